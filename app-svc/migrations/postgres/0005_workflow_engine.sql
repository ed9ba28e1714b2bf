-- What the workflow engine keeps beside the runs: the run a rerun repeats, the event that
-- started a run (at most one run of a workflow per event, however often the bus delivers
-- it), and the schedule ticks taken, one row per workflow and tick, so of several app-svc
-- processes exactly one runs each tick.

ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS rerun_of uuid;
ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS event_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS workflow_runs_event_idx ON workflow_runs (workflow_id, event_id);
CREATE INDEX IF NOT EXISTS workflow_runs_listed_idx ON workflow_runs (workspace_id, workflow_id, started_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS workflow_ticks (
    workflow_id  uuid NOT NULL,
    tick_at      timestamptz NOT NULL,
    taken_at     timestamptz NOT NULL,
    PRIMARY KEY (workflow_id, tick_at)
);
