-- Failed sign-ins per email address, for the lockout back-off. Keyed by the SHA-256 of the
-- normalised address: addresses without an account are throttled the same way, and are
-- not kept in clear.
CREATE TABLE login_failures (
    email_key        text PRIMARY KEY,
    failures         integer NOT NULL,
    last_failure_at  text NOT NULL,
    locked_until     text
);
CREATE INDEX login_failures_last_idx ON login_failures (last_failure_at);

-- The workspace owner reads the workspace's security events, newest first.
CREATE INDEX audit_log_workspace_idx ON audit_log (workspace_id, at, id);
