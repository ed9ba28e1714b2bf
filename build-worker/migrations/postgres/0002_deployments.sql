-- Containers started from builds' images (BuildService.RunBuild), reconciled with the
-- Docker engine at start-up and whenever they are listed.
CREATE TABLE IF NOT EXISTS deployments (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL,
    application_id  uuid NOT NULL,
    build_id        uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    container_id    text NOT NULL,
    image           text NOT NULL,
    host_port       integer NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'exited', 'missing', 'removed')),
    created_by      uuid,
    created_at      timestamptz NOT NULL,
    stopped_at      timestamptz
);
CREATE INDEX IF NOT EXISTS deployments_application_idx ON deployments (workspace_id, application_id, created_at);
