-- model-svc's tables: the workspaces' models and their versions (each workspace's
-- record tables are made by the models themselves). `workspace_id` names app-svc's
-- workspace without a foreign key: no service reaches into another's tables.
-- Idempotent, so a database made before the tables had owners takes it as is.

CREATE TABLE IF NOT EXISTS models (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL,
    name          text NOT NULL,
    singular      text NOT NULL,
    plural        text NOT NULL,
    slug          text NOT NULL,
    label         text NOT NULL,
    label_plural  text NOT NULL,
    description   text NOT NULL,
    title_field   text NOT NULL,
    is_system     boolean NOT NULL,
    version       integer NOT NULL,
    fields        jsonb NOT NULL,
    table_name    text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (workspace_id, plural),
    UNIQUE (workspace_id, slug)
);

CREATE TABLE IF NOT EXISTS model_versions (
    model_id    uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    fields      jsonb NOT NULL,
    author      uuid,
    summary     text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (model_id, version)
);

-- Which version of seeds/models.yaml each workspace's system models are at.
CREATE TABLE IF NOT EXISTS model_seeds (
    workspace_id  uuid PRIMARY KEY,
    version       integer NOT NULL
);
