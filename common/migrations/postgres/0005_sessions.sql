-- A session is one sign-in: the refresh-token family, and the `sid` of its access tokens.
-- Access tokens are accepted only while their session is live and belongs to the user
-- and workspace they name. Refresh and logout lock the session's row, so a refresh
-- racing a logout cannot leave the session live.
CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Sessions of tokens issued before this table: live while any token of the family is.
INSERT INTO sessions (id, user_id, workspace_id, created_at, last_used_at, revoked_at)
SELECT r.family_id, r.user_id, u.workspace_id, MIN(r.created_at), MAX(r.created_at),
       CASE WHEN SUM(CASE WHEN r.revoked_at IS NULL THEN 1 ELSE 0 END) = 0 THEN MAX(r.revoked_at) END
FROM refresh_tokens r JOIN users u ON u.id = r.user_id
GROUP BY r.family_id, r.user_id, u.workspace_id;
