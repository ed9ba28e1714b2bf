-- Webhook subscriptions of a workspace and their deliveries. A delivery is one event for
-- one subscription (at most one, however often the bus delivers the event), with every
-- attempt kept; the dispatcher takes deliveries whose next attempt is due.

CREATE TABLE IF NOT EXISTS webhooks (
    id               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_by       uuid,
    url              text NOT NULL CHECK (char_length(url) <= 2048),
    description      text NOT NULL DEFAULT '',
    events           jsonb NOT NULL,
    secret           text NOT NULL,
    enabled          boolean NOT NULL DEFAULT TRUE,
    disabled_reason  text,
    -- Since when deliveries have failed with none succeeding; NULL while healthy.
    failing_since    timestamptz
);
CREATE INDEX IF NOT EXISTS webhooks_workspace_idx ON webhooks (workspace_id, created_at, id);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    event_kind       text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Each attempt: at, status_code, error, duration_ms.
    attempts         jsonb NOT NULL DEFAULT '[]',
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_listed_idx ON webhook_deliveries (webhook_id, id DESC);
