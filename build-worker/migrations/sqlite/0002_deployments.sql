-- Containers started from builds' images (BuildService.RunBuild), reconciled with the
-- Docker engine at start-up and whenever they are listed. SQLite mirror of
-- postgres/0002_deployments.sql.
CREATE TABLE IF NOT EXISTS deployments (
    id              text PRIMARY KEY,
    workspace_id    text NOT NULL,
    application_id  text NOT NULL,
    build_id        text NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    container_id    text NOT NULL,
    image           text NOT NULL,
    host_port       integer NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'exited', 'missing', 'removed')),
    created_by      text,
    created_at      text NOT NULL,
    stopped_at      text
);
CREATE INDEX IF NOT EXISTS deployments_application_idx ON deployments (workspace_id, application_id, created_at);
