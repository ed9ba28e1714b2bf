-- app-svc's tables: identity (workspaces, users, their settings, sessions and refresh
-- tokens, sign-in failures), the audit log, the records of the system kinds it owns
-- (applications, components, templates, workflows, prompts) and what seeding gave each
-- workspace. Idempotent, so a database made before the tables had owners takes it as is.

CREATE TABLE IF NOT EXISTS workspaces (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    -- The user that created it; no foreign key because users point back here.
    owner_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- Which version of seeds/*.yaml the workspace has received; newer seeds add what is missing.
    seed_version  integer NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    workspace_id   uuid NOT NULL REFERENCES workspaces (id),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS user_settings (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    theme          text NOT NULL,
    locale         text NOT NULL,
    notifications  boolean NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- One row per refresh token ever issued. A family is one sign-in session: rotation adds
-- a row to it; reuse of a spent row revokes every row of the family.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    id          uuid PRIMARY KEY,
    -- SHA-256 of the token, hex; the token itself is never stored.
    token_hash  text NOT NULL UNIQUE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE IF NOT EXISTS audit_log (
    id            uuid PRIMARY KEY,
    at            timestamptz NOT NULL,
    workspace_id  uuid,
    user_id       uuid,
    action        text NOT NULL,
    outcome       text NOT NULL,
    detail        jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_user_idx ON audit_log (user_id, at);

-- A session is one sign-in: the refresh-token family, and the `sid` of its access tokens.
-- Access tokens are accepted only while their session is live and belongs to the user
-- and workspace they name. Refresh and logout lock the session's row, so a refresh
-- racing a logout cannot leave the session live.
CREATE TABLE IF NOT EXISTS sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (user_id);

-- Failed sign-ins per email address, for the lockout back-off. Keyed by the SHA-256 of the
-- normalised address: addresses without an account are throttled the same way, and are
-- not kept in clear.
CREATE TABLE IF NOT EXISTS login_failures (
    email_key        text PRIMARY KEY,
    failures         integer NOT NULL,
    last_failure_at  timestamptz NOT NULL,
    locked_until     timestamptz
);
CREATE INDEX IF NOT EXISTS login_failures_last_idx ON login_failures (last_failure_at);

-- The workspace owner reads the workspace's security events, newest first.
CREATE INDEX IF NOT EXISTS audit_log_workspace_idx ON audit_log (workspace_id, at, id);

-- Records of the system models that the generic records API serves. Their columns are
-- the fields seeds/models.yaml gives each model, plus the columns every record has;
-- workspace_id scopes them (these tables hold every workspace's rows).

CREATE TABLE IF NOT EXISTS applications (
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
CREATE INDEX IF NOT EXISTS applications_created_idx ON applications (workspace_id, created_at, id);

CREATE TABLE IF NOT EXISTS components (
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
CREATE INDEX IF NOT EXISTS components_created_idx ON components (workspace_id, created_at, id);

CREATE TABLE IF NOT EXISTS templates (
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
CREATE INDEX IF NOT EXISTS templates_created_idx ON templates (workspace_id, created_at, id);

CREATE TABLE IF NOT EXISTS workflows (
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
CREATE INDEX IF NOT EXISTS workflows_created_idx ON workflows (workspace_id, created_at, id);

CREATE TABLE IF NOT EXISTS prompts (
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
CREATE INDEX IF NOT EXISTS prompts_created_idx ON prompts (workspace_id, created_at, id);

-- Seeded items (workflows, templates) each workspace has received, by key: an item is
-- seeded once, so one the user deleted or changed is left as the user left it.
CREATE TABLE IF NOT EXISTS seed_items (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    item_key      text NOT NULL,
    seeded_at     timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, item_key)
);
