-- SQLite mirror of postgres/0003: ids text, times text, JSON text, booleans 0/1.
-- Records of the system models that the generic records API serves. Their columns are
-- the fields seeds/models.yaml gives each model, plus the columns every record has;
-- workspace_id scopes them (these tables hold every workspace's rows).

CREATE TABLE applications (
    id            text PRIMARY KEY,
    workspace_id  text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    text NOT NULL,
    updated_at    text NOT NULL,
    created_by    text,
    name          text NOT NULL CHECK (length(name) <= 100),
    slug          text NOT NULL CHECK (length(slug) <= 63),
    description   text,
    model_ids     text,
    template_set  text,
    config        text,
    CONSTRAINT applications_slug_key UNIQUE (workspace_id, slug)
);
CREATE INDEX applications_created_idx ON applications (workspace_id, created_at, id);

CREATE TABLE components (
    id            text PRIMARY KEY,
    workspace_id  text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    text NOT NULL,
    updated_at    text NOT NULL,
    created_by    text,
    application   text NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) <= 100),
    kind          text NOT NULL CHECK (kind IN ('list', 'form', 'detail', 'chart', 'custom')),
    props         text
);
CREATE INDEX components_created_idx ON components (workspace_id, created_at, id);

CREATE TABLE templates (
    id            text PRIMARY KEY,
    workspace_id  text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    text NOT NULL,
    updated_at    text NOT NULL,
    created_by    text,
    "set"         text NOT NULL CHECK (length("set") <= 63),
    name          text NOT NULL CHECK (length(name) <= 100),
    output_path   text NOT NULL,
    body          text NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('once', 'per_model')),
    language      text
);
CREATE INDEX templates_created_idx ON templates (workspace_id, created_at, id);

CREATE TABLE workflows (
    id            text PRIMARY KEY,
    workspace_id  text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    text NOT NULL,
    updated_at    text NOT NULL,
    created_by    text,
    name          text NOT NULL CHECK (length(name) <= 100),
    description   text,
    "trigger"     text NOT NULL,
    actions       text NOT NULL,
    enabled       integer CHECK (enabled IN (0, 1))
);
CREATE INDEX workflows_created_idx ON workflows (workspace_id, created_at, id);

CREATE TABLE prompts (
    id               text PRIMARY KEY,
    workspace_id     text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at       text NOT NULL,
    updated_at       text NOT NULL,
    created_by       text,
    name             text NOT NULL CHECK (length(name) <= 100),
    category         text CHECK (length(category) <= 63),
    "type"           text NOT NULL CHECK ("type" IN ('llm', 'code_generation')),
    content          text NOT NULL,
    variables        text,
    current_version  integer CHECK (current_version >= 1)
);
CREATE INDEX prompts_created_idx ON prompts (workspace_id, created_at, id);
