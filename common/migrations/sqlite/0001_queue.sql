-- The durable job queue of a single-process Kiln (kiln_common::queue::TableQueue).
CREATE TABLE IF NOT EXISTS queue_jobs (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- How many times the job has been taken.
    attempt INTEGER NOT NULL DEFAULT 0,
    -- ready (waiting, or waiting for a retry until available_at), held (by held_by until
    -- held_until), dead (gave up: last_error says why).
    state TEXT NOT NULL CHECK (state IN ('ready', 'held', 'dead')),
    available_at INTEGER NOT NULL,
    held_by TEXT,
    held_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_jobs_next_idx ON queue_jobs (queue, state, available_at);
