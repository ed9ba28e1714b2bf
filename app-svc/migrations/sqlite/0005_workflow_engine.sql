-- What the workflow engine keeps beside the runs: the run a rerun repeats, the event that
-- started a run, and the schedule ticks taken. SQLite mirror of
-- postgres/0005_workflow_engine.sql.

ALTER TABLE workflow_runs ADD COLUMN rerun_of text;
ALTER TABLE workflow_runs ADD COLUMN event_id text;
CREATE UNIQUE INDEX IF NOT EXISTS workflow_runs_event_idx ON workflow_runs (workflow_id, event_id);
CREATE INDEX IF NOT EXISTS workflow_runs_listed_idx ON workflow_runs (workspace_id, workflow_id, started_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS workflow_ticks (
    workflow_id  text NOT NULL,
    tick_at      text NOT NULL,
    taken_at     text NOT NULL,
    PRIMARY KEY (workflow_id, tick_at)
);
