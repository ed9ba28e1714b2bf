-- Records of the system models that the generic records API serves. Their columns are
-- the fields seeds/models.yaml gives each model, plus the columns every record has;
-- workspace_id scopes them (these tables hold every workspace's rows).

CREATE TABLE applications (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    created_by    uuid,
    name          text NOT NULL CHECK (char_length(name) <= 100),
    slug          text NOT NULL CHECK (char_length(slug) <= 63),
    description   text,
    model_ids     jsonb,
    template_set  text,
    config        jsonb,
    CONSTRAINT applications_slug_key UNIQUE (workspace_id, slug)
);
CREATE INDEX applications_created_idx ON applications (workspace_id, created_at, id);

CREATE TABLE components (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    created_by    uuid,
    application   uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (char_length(name) <= 100),
    kind          text NOT NULL CHECK (kind IN ('list', 'form', 'detail', 'chart', 'custom')),
    props         jsonb
);
CREATE INDEX components_created_idx ON components (workspace_id, created_at, id);

CREATE TABLE templates (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    created_by    uuid,
    "set"         text NOT NULL CHECK (char_length("set") <= 63),
    name          text NOT NULL CHECK (char_length(name) <= 100),
    output_path   text NOT NULL,
    body          text NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('once', 'per_model')),
    language      text
);
CREATE INDEX templates_created_idx ON templates (workspace_id, created_at, id);

CREATE TABLE workflows (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    created_by    uuid,
    name          text NOT NULL CHECK (char_length(name) <= 100),
    description   text,
    "trigger"     jsonb NOT NULL,
    actions       jsonb NOT NULL,
    enabled       boolean
);
CREATE INDEX workflows_created_idx ON workflows (workspace_id, created_at, id);

CREATE TABLE prompts (
    id               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_by       uuid,
    name             text NOT NULL CHECK (char_length(name) <= 100),
    category         text CHECK (char_length(category) <= 63),
    "type"           text NOT NULL CHECK ("type" IN ('llm', 'code_generation')),
    content          text NOT NULL,
    variables        jsonb,
    current_version  bigint CHECK (current_version >= 1)
);
CREATE INDEX prompts_created_idx ON prompts (workspace_id, created_at, id);
