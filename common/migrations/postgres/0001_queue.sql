-- The durable job queue of a single-process Kiln (kiln_common::queue::TableQueue).
CREATE TABLE IF NOT EXISTS queue_jobs (
    id uuid PRIMARY KEY,
    queue text NOT NULL,
    payload jsonb NOT NULL,
    -- How many times the job has been taken.
    attempt integer NOT NULL DEFAULT 0,
    -- ready (waiting, or waiting for a retry until available_at), held (by held_by until
    -- held_until), dead (gave up: last_error says why).
    state text NOT NULL CHECK (state IN ('ready', 'held', 'dead')),
    available_at bigint NOT NULL,
    held_by text,
    held_until bigint,
    last_error text,
    created_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_jobs_next_idx ON queue_jobs (queue, state, available_at);
