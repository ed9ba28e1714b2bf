-- Identity, workspaces, the audit log and model metadata (SQLite mirror of postgres/0001).
-- Ids are hyphenated UUID text, times RFC 3339 text, JSON text, booleans 0/1.

CREATE TABLE workspaces (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    -- The user that created it; no foreign key because users point back here.
    owner_id    text NOT NULL,
    created_at  text NOT NULL,
    updated_at  text NOT NULL
);

CREATE TABLE users (
    id             text PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    workspace_id   text NOT NULL REFERENCES workspaces (id),
    created_at     text NOT NULL,
    updated_at     text NOT NULL
);

CREATE TABLE user_settings (
    user_id        text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    theme          text NOT NULL,
    locale         text NOT NULL,
    notifications  integer NOT NULL,
    updated_at     text NOT NULL
);

-- One row per refresh token ever issued. A family is one sign-in session: rotation adds
-- a row to it; reuse of a spent row revokes every row of the family.
CREATE TABLE refresh_tokens (
    id          text PRIMARY KEY,
    -- SHA-256 of the token, hex; the token itself is never stored.
    token_hash  text NOT NULL UNIQUE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   text NOT NULL,
    created_at  text NOT NULL,
    expires_at  text NOT NULL,
    used_at     text,
    revoked_at  text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE audit_log (
    id            text PRIMARY KEY,
    at            text NOT NULL,
    workspace_id  text,
    user_id       text,
    action        text NOT NULL,
    outcome       text NOT NULL,
    detail        text NOT NULL
);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, at);

CREATE TABLE models (
    id            text PRIMARY KEY,
    workspace_id  text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          text NOT NULL,
    singular      text NOT NULL,
    plural        text NOT NULL,
    slug          text NOT NULL,
    label         text NOT NULL,
    label_plural  text NOT NULL,
    description   text NOT NULL,
    title_field   text NOT NULL,
    is_system     integer NOT NULL,
    version       integer NOT NULL,
    fields        text NOT NULL,
    table_name    text NOT NULL,
    created_at    text NOT NULL,
    updated_at    text NOT NULL,
    UNIQUE (workspace_id, plural),
    UNIQUE (workspace_id, slug)
);

CREATE TABLE model_versions (
    model_id    text NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    fields      text NOT NULL,
    author      text,
    summary     text NOT NULL,
    created_at  text NOT NULL,
    PRIMARY KEY (model_id, version)
);
