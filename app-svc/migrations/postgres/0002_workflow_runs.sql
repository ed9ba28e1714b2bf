-- Runs of workflows, each with its actions' results; and which row a seeded item became,
-- so a workspace's seeded workflows (the build workflow) are found by their key.

CREATE TABLE IF NOT EXISTS workflow_runs (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    workflow_id   uuid NOT NULL,
    -- What fired it: manual, on_event, schedule.
    trigger       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    -- What the run was given (the trigger's context).
    input         jsonb NOT NULL,
    -- One entry per action run: name, kind, status, output, error, started_at, duration_ms.
    actions       jsonb NOT NULL DEFAULT '[]',
    error         text,
    created_by    uuid,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz
);
CREATE INDEX IF NOT EXISTS workflow_runs_workflow_idx ON workflow_runs (workspace_id, workflow_id, started_at);

ALTER TABLE seed_items ADD COLUMN IF NOT EXISTS item_id uuid;

-- Workspaces seeded before items were remembered by row: the build workflow by its name.
UPDATE seed_items SET item_id = (
    SELECT w.id FROM workflows w
    WHERE w.workspace_id = seed_items.workspace_id AND w.name = 'Export/Build Application'
    ORDER BY w.created_at LIMIT 1
) WHERE item_key = 'workflow:build-application' AND item_id IS NULL;
