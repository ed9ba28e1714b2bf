-- Prompt versions (immutable; a prompt's content is its current version's), test runs,
-- and each workspace's chat-completions endpoint for test runs, its key encrypted.

CREATE TABLE IF NOT EXISTS prompt_versions (
    prompt_id    uuid NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version      integer NOT NULL CHECK (version >= 1),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    content      text NOT NULL,
    variables    jsonb,
    change_note  text NOT NULL DEFAULT '',
    created_by   uuid,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (prompt_id, version)
);

CREATE TABLE IF NOT EXISTS prompt_test_runs (
    id                 uuid PRIMARY KEY,
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    prompt_id          uuid NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version            integer NOT NULL,
    variables          jsonb NOT NULL,
    rendered           text NOT NULL,
    status             text NOT NULL CHECK (status IN ('rendered', 'succeeded', 'failed')),
    output             text NOT NULL DEFAULT '',
    error              text NOT NULL DEFAULT '',
    model              text NOT NULL DEFAULT '',
    latency_ms         bigint NOT NULL DEFAULT 0,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    total_tokens       integer NOT NULL DEFAULT 0,
    created_by         uuid,
    created_at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS prompt_test_runs_prompt_idx ON prompt_test_runs (prompt_id, id DESC);

CREATE TABLE IF NOT EXISTS prompt_providers (
    workspace_id  uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    url           text NOT NULL CHECK (char_length(url) <= 2048),
    model         text NOT NULL CHECK (char_length(model) <= 200),
    -- nonce || ChaCha20-Poly1305 ciphertext of the key, under a key derived from the
    -- token signing secret; NULL when no key is needed.
    sealed_key    bytea,
    key_hint      text NOT NULL DEFAULT '',
    updated_by    uuid,
    updated_at    timestamptz NOT NULL
);
