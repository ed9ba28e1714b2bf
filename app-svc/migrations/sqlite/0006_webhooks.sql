-- Webhook subscriptions of a workspace and their deliveries. SQLite mirror of
-- postgres/0006_webhooks.sql.

CREATE TABLE IF NOT EXISTS webhooks (
    id               text PRIMARY KEY,
    workspace_id     text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at       text NOT NULL,
    updated_at       text NOT NULL,
    created_by       text,
    url              text NOT NULL CHECK (length(url) <= 2048),
    description      text NOT NULL DEFAULT '',
    events           text NOT NULL,
    secret           text NOT NULL,
    enabled          boolean NOT NULL DEFAULT TRUE,
    disabled_reason  text,
    failing_since    text
);
CREATE INDEX IF NOT EXISTS webhooks_workspace_idx ON webhooks (workspace_id, created_at, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id               text PRIMARY KEY,
    workspace_id     text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    webhook_id       text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         text NOT NULL,
    event_kind       text NOT NULL,
    payload          text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         text NOT NULL DEFAULT '[]',
    next_attempt_at  text,
    created_at       text NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_listed_idx ON webhook_deliveries (webhook_id, id DESC);
