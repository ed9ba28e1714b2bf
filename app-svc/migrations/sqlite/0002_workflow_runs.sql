-- Runs of workflows, each with its actions' results; and which row a seeded item became,
-- so a workspace's seeded workflows (the build workflow) are found by their key.
-- SQLite mirror of postgres/0002_workflow_runs.sql.

CREATE TABLE IF NOT EXISTS workflow_runs (
    id            text PRIMARY KEY,
    workspace_id  text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    workflow_id   text NOT NULL,
    trigger       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    input         text NOT NULL,
    actions       text NOT NULL DEFAULT '[]',
    error         text,
    created_by    text,
    started_at    text NOT NULL,
    finished_at   text
);
CREATE INDEX IF NOT EXISTS workflow_runs_workflow_idx ON workflow_runs (workspace_id, workflow_id, started_at);

ALTER TABLE seed_items ADD COLUMN item_id text;

UPDATE seed_items SET item_id = (
    SELECT w.id FROM workflows w
    WHERE w.workspace_id = seed_items.workspace_id AND w.name = 'Export/Build Application'
    ORDER BY w.created_at LIMIT 1
) WHERE item_key = 'workflow:build-application' AND item_id IS NULL;
