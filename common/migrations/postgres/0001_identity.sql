-- Identity, workspaces, the audit log and model metadata.

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    -- The user that created it; no foreign key because users point back here.
    owner_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    workspace_id   uuid NOT NULL REFERENCES workspaces (id),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE user_settings (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    theme          text NOT NULL,
    locale         text NOT NULL,
    notifications  boolean NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- One row per refresh token ever issued. A family is one sign-in session: rotation adds
-- a row to it; reuse of a spent row revokes every row of the family.
CREATE TABLE refresh_tokens (
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
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE audit_log (
    id            uuid PRIMARY KEY,
    at            timestamptz NOT NULL,
    workspace_id  uuid,
    user_id       uuid,
    action        text NOT NULL,
    outcome       text NOT NULL,
    detail        jsonb NOT NULL
);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, at);

CREATE TABLE models (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
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

CREATE TABLE model_versions (
    model_id    uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    fields      jsonb NOT NULL,
    author      uuid,
    summary     text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (model_id, version)
);
