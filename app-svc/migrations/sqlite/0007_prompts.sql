-- Prompt versions, test runs and each workspace's chat-completions endpoint. SQLite
-- mirror of postgres/0007_prompts.sql.

CREATE TABLE IF NOT EXISTS prompt_versions (
    prompt_id    text NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version      integer NOT NULL CHECK (version >= 1),
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    content      text NOT NULL,
    variables    text,
    change_note  text NOT NULL DEFAULT '',
    created_by   text,
    created_at   text NOT NULL,
    PRIMARY KEY (prompt_id, version)
);

CREATE TABLE IF NOT EXISTS prompt_test_runs (
    id                 text PRIMARY KEY,
    workspace_id       text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    prompt_id          text NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version            integer NOT NULL,
    variables          text NOT NULL,
    rendered           text NOT NULL,
    status             text NOT NULL CHECK (status IN ('rendered', 'succeeded', 'failed')),
    output             text NOT NULL DEFAULT '',
    error              text NOT NULL DEFAULT '',
    model              text NOT NULL DEFAULT '',
    latency_ms         integer NOT NULL DEFAULT 0,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    total_tokens       integer NOT NULL DEFAULT 0,
    created_by         text,
    created_at         text NOT NULL
);
CREATE INDEX IF NOT EXISTS prompt_test_runs_prompt_idx ON prompt_test_runs (prompt_id, id DESC);

CREATE TABLE IF NOT EXISTS prompt_providers (
    workspace_id  text PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    url           text NOT NULL CHECK (length(url) <= 2048),
    model         text NOT NULL CHECK (length(model) <= 200),
    sealed_key    blob,
    key_hint      text NOT NULL DEFAULT '',
    updated_by    text,
    updated_at    text NOT NULL
);
