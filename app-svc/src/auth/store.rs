//! Identity rows: users, their settings and workspaces, refresh tokens, the audit log.

use chrono::{DateTime, Utc};
use kiln_common::{
    db::{Db, Id, RowExt, is_unique_violation},
    error::ServiceError,
    records::names,
    with_db, with_db_read,
};
use sqlx::Connection as _;
use uuid::Uuid;

/// A user with their settings, as the API shows them.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub workspace_id: Uuid,
    pub workspace_slug: String,
    pub theme: String,
    pub locale: String,
    pub notifications: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "u.id, u.email, u.display_name, u.workspace_id, u.created_at, u.updated_at, \
     s.theme, s.locale, s.notifications, w.slug AS workspace_slug";

/// A user with their settings and workspace: `SELECT {USER_COLUMNS} FROM {USER_TABLES} WHERE …`.
const USER_TABLES: &str = "users u JOIN user_settings s ON s.user_id = u.id JOIN workspaces w ON w.id = u.workspace_id";

fn user_from_row(row: &impl RowExt) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: row.id("id")?,
        email: row.text("email")?,
        display_name: row.text("display_name")?,
        workspace_id: row.id("workspace_id")?,
        workspace_slug: row.text("workspace_slug")?,
        theme: row.text("theme")?,
        locale: row.text("locale")?,
        notifications: row.boolean("notifications")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// What creating an account writes.
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
}

/// Creates the user, their personal workspace and default settings in one transaction.
/// The workspace's slug comes from the user's name (or email); when another workspace
/// has it, a few random characters are added.
pub async fn create_account(db: &Db, account: NewAccount<'_>) -> Result<UserRecord, ServiceError> {
    let base = [account.display_name, account.email.split('@').next().unwrap_or_default()]
        .into_iter()
        .map(names::workspace_slug)
        .find(|slug| !slug.is_empty())
        .unwrap_or_else(|| "workspace".into());
    let mut slug = base.clone();
    for _ in 0..4 {
        if !slug_taken(db, &slug).await? {
            match insert_account(db, &account, &slug).await {
                // Taken meanwhile by another registration: pick again.
                Err(e) if is_unique_violation(&e) && find_login(db, account.email).await?.is_none() => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(ServiceError::AlreadyExists {
                        message: "an account with this email already exists".into(),
                        field: Some("email".into()),
                    });
                }
                Err(e) => return Err(e.into()),
                Ok(user_id) => {
                    return find_user(db, user_id.0)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("created user vanished").into());
                }
            }
        }
        let suffix = &Id::new().0.simple().to_string()[26..];
        slug = format!("{}_{suffix}", base.chars().take(names::MAX_WORKSPACE_SLUG_LEN - 7).collect::<String>());
    }
    Err(anyhow::anyhow!("no free workspace slug after four tries from {base:?}").into())
}

async fn slug_taken(db: &Db, slug: &str) -> Result<bool, ServiceError> {
    let taken = with_db_read!(db, pool => {
        sqlx::query("SELECT 1 FROM workspaces WHERE slug = $1").bind(slug).fetch_optional(pool).await?.is_some()
    });
    Ok(taken)
}

/// The account's rows; the new user's id.
async fn insert_account(db: &Db, account: &NewAccount<'_>, slug: &str) -> Result<Id, sqlx::Error> {
    let now = kiln_common::db::now();
    let user_id = Id::new();
    let workspace_id = Id::new();
    let workspace_name = format!("{}'s workspace", account.display_name);
    with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO workspaces (id, name, slug, owner_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(workspace_id).bind(&workspace_name).bind(slug).bind(user_id).bind(now)
        .execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash, workspace_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(user_id).bind(account.email).bind(account.display_name).bind(account.password_hash)
        .bind(workspace_id).bind(now)
        .execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO user_settings (user_id, theme, locale, notifications, updated_at) VALUES ($1, 'system', 'en', $2, $3)",
        )
        .bind(user_id).bind(true).bind(now)
        .execute(&mut *tx).await?;
        tx.commit().await
    }.await)?;
    Ok(user_id)
}

pub async fn find_user(db: &Db, id: Uuid) -> Result<Option<UserRecord>, ServiceError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM {USER_TABLES} WHERE u.id = $1");
    let user = with_db_read!(db, pool => {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(id)).fetch_optional(pool).await?
            .map(|row| user_from_row(&row)).transpose()?
    });
    Ok(user)
}

/// The user with this (normalised) email and their password hash.
pub async fn find_login(db: &Db, email: &str) -> Result<Option<(UserRecord, String)>, ServiceError> {
    let sql = format!("SELECT {USER_COLUMNS}, u.password_hash FROM {USER_TABLES} WHERE u.email = $1");
    let found = with_db_read!(db, pool => {
        match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(email).fetch_optional(pool).await? {
            Some(row) => Some((user_from_row(&row)?, row.text("password_hash")?)),
            None => None,
        }
    });
    Ok(found)
}

/// Changes to a profile; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub display_name: Option<String>,
    pub theme: Option<String>,
    pub locale: Option<String>,
    pub notifications: Option<bool>,
}

pub async fn update_profile(db: &Db, user_id: Uuid, changes: ProfileChanges) -> Result<(), ServiceError> {
    let now = kiln_common::db::now();
    with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("UPDATE users SET display_name = COALESCE($2, display_name), updated_at = $3 WHERE id = $1")
            .bind(Id(user_id)).bind(&changes.display_name).bind(now)
            .execute(&mut *tx).await?;
        sqlx::query(
            "UPDATE user_settings SET theme = COALESCE($2, theme), locale = COALESCE($3, locale), \
             notifications = COALESCE($4, notifications), updated_at = $5 WHERE user_id = $1",
        )
        .bind(Id(user_id)).bind(&changes.theme).bind(&changes.locale).bind(changes.notifications).bind(now)
        .execute(&mut *tx).await?;
        tx.commit().await
    }.await)?;
    Ok(())
}

/// A stored refresh token, found by the hash of what the client presented.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A refresh token about to be handed out: what is stored of it.
pub struct NewRefreshToken<'a> {
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
}

macro_rules! insert_refresh_token {
    ($tx:expr, $token:expr, $user_id:expr, $family_id:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Id::new())
        .bind($token.token_hash)
        .bind(Id($user_id))
        .bind(Id($family_id))
        .bind($now)
        .bind($token.expires_at)
        .execute(&mut *$tx)
        .await
    };
}

macro_rules! revoke_session {
    ($tx:expr, $session_id:expr, $now:expr) => {
        async {
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(Id($session_id))
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                .bind(Id($session_id))
                .bind($now)
                .execute(&mut *$tx)
                .await
                .map(|done| done.rows_affected())
        }
        .await
    };
}

/// Starts a session for `user` with its first refresh token.
pub async fn start_session(
    db: &Db,
    session_id: Uuid,
    user: &UserRecord,
    token: NewRefreshToken<'_>,
) -> Result<(), ServiceError> {
    let now = kiln_common::db::now();
    with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, workspace_id, created_at, last_used_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(Id(session_id)).bind(Id(user.id)).bind(Id(user.workspace_id)).bind(now)
        .execute(&mut *tx).await?;
        insert_refresh_token!(tx, token, user.id, session_id, now)?;
        tx.commit().await
    }.await)?;
    Ok(())
}

/// What spending a refresh token came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Spent; its successor is stored.
    Rotated,
    /// The session had already ended.
    SessionEnded,
    /// The token was spent before: the session is now ended; `revoked` tokens were live.
    Reused { revoked: u64 },
}

/// Spends `spent` and stores its successor, in one transaction that first locks the
/// session's row: a logout of the same session waits for it, or it for the logout, so
/// the successor is never stored into an ended session.
pub async fn rotate_refresh_token(
    db: &Db,
    spent: &RefreshRecord,
    successor: NewRefreshToken<'_>,
) -> Result<Rotation, ServiceError> {
    let now = kiln_common::db::now();
    let rotation = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // Writing first takes the row lock (PostgreSQL) or the write lock (SQLite) at once.
        let live = sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(Id(spent.family_id)).bind(now)
            .execute(&mut *tx).await?.rows_affected() == 1;
        if !live {
            return Ok(Rotation::SessionEnded);
        }
        let spendable = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(Id(spent.id)).bind(now)
        .execute(&mut *tx).await?.rows_affected() == 1;
        if !spendable {
            let revoked = revoke_session!(tx, spent.family_id, now)?;
            tx.commit().await?;
            return Ok(Rotation::Reused { revoked });
        }
        insert_refresh_token!(tx, successor, spent.user_id, spent.family_id, now)?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Rotation::Rotated)
    }.await)?;
    Ok(rotation)
}

pub async fn find_refresh_token(db: &Db, token_hash: &str) -> Result<Option<RefreshRecord>, ServiceError> {
    let found = with_db_read!(db, pool => {
        match sqlx::query(
            "SELECT id, user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await?
        {
            Some(row) => Some(RefreshRecord {
                id: row.id("id")?,
                user_id: row.id("user_id")?,
                family_id: row.id("family_id")?,
                expires_at: row.time("expires_at")?,
                used_at: row.opt_time("used_at")?,
                revoked_at: row.opt_time("revoked_at")?,
            }),
            None => None,
        }
    });
    Ok(found)
}

/// Ends a session and revokes its refresh tokens; returns how many were still live.
pub async fn end_session(db: &Db, session_id: Uuid) -> Result<u64, ServiceError> {
    let now = kiln_common::db::now();
    let revoked = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let revoked = revoke_session!(tx, session_id, now)?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(revoked)
    }.await)?;
    Ok(revoked)
}

/// Ends every live session of `user_id`; returns their ids.
pub async fn end_sessions_of_user(db: &Db, user_id: Uuid) -> Result<Vec<Uuid>, ServiceError> {
    let now = kiln_common::db::now();
    let ended = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let live: Vec<Id> = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(Id(user_id))
            .fetch_all(&mut *tx)
            .await?;
        for session in &live {
            revoke_session!(tx, session.0, now)?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(live.into_iter().map(|id| id.0).collect())
    }.await)?;
    Ok(ended)
}

/// A security event for the audit log.
pub struct AuditEvent<'a> {
    pub action: &'a str,
    pub outcome: &'a str,
    pub user_id: Option<Uuid>,
    pub workspace_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// Records a security event. A failure to record is logged, never shown to the caller:
/// the event itself already happened.
pub async fn audit(db: &Db, event: AuditEvent<'_>) {
    let result = with_db!(db, pool => {
        sqlx::query(
            "INSERT INTO audit_log (id, at, workspace_id, user_id, action, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Id::new()).bind(kiln_common::db::now()).bind(event.workspace_id.map(Id)).bind(event.user_id.map(Id))
        .bind(event.action).bind(event.outcome).bind(sqlx::types::Json(&event.detail))
        .execute(pool).await.map(|_| ())
    });
    if let Err(e) = result {
        tracing::error!(error = %e, action = event.action, "could not write audit log");
    }
}

/// Until when sign-ins for an address are refused, if they are.
pub async fn locked_until(db: &Db, email_key: &str) -> Result<Option<DateTime<Utc>>, ServiceError> {
    let found = with_db_read!(db, pool => {
        sqlx::query("SELECT locked_until FROM login_failures WHERE email_key = $1")
            .bind(email_key).fetch_optional(pool).await?
            .map(|row| row.opt_time("locked_until")).transpose()?.flatten()
    });
    Ok(found)
}

/// Counts a failed sign-in for an address (starting over if the last was before
/// `window_start`) and locks it until `lock(failures)`, if that gives a time.
pub async fn record_login_failure(
    db: &Db,
    email_key: &str,
    window_start: DateTime<Utc>,
    lock: impl Fn(i64) -> Option<DateTime<Utc>>,
) -> Result<i64, ServiceError> {
    let now = kiln_common::db::now();
    let failures = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // Addresses that stopped failing long ago are forgotten.
        sqlx::query("DELETE FROM login_failures WHERE last_failure_at < $1").bind(window_start)
            .execute(&mut *tx).await?;
        let failures: i64 = sqlx::query(
            "INSERT INTO login_failures (email_key, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (email_key) DO UPDATE SET failures = login_failures.failures + 1, last_failure_at = $2 \
             RETURNING failures",
        )
        .bind(email_key).bind(now)
        .fetch_one(&mut *tx).await?.int("failures")?;
        if let Some(until) = lock(failures) {
            sqlx::query("UPDATE login_failures SET locked_until = $2 WHERE email_key = $1")
                .bind(email_key).bind(until)
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(failures)
    }.await)?;
    Ok(failures)
}

/// A successful sign-in clears the address's failures.
pub async fn clear_login_failures(db: &Db, email_key: &str) -> Result<(), ServiceError> {
    with_db!(db, pool => {
        sqlx::query("DELETE FROM login_failures WHERE email_key = $1").bind(email_key).execute(pool).await.map(|_| ())
    })?;
    Ok(())
}

/// Whether the user owns the workspace.
pub async fn owns_workspace(db: &Db, user_id: Uuid, workspace_id: Uuid) -> Result<bool, ServiceError> {
    let owner: Option<Id> = with_db_read!(db, pool => {
        sqlx::query_scalar("SELECT owner_id FROM workspaces WHERE id = $1").bind(Id(workspace_id)).fetch_optional(pool).await?
    });
    Ok(owner == Some(Id(user_id)))
}

/// An audit event as stored.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub user_id: Option<Uuid>,
    pub action: String,
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// A workspace's events, newest first, strictly before `before` (time, id) if given.
pub async fn audit_events(
    db: &Db,
    workspace_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<AuditRecord>, ServiceError> {
    let (at, id) = match before {
        Some((at, id)) => (Some(at), Some(Id(id))),
        None => (None, None),
    };
    let events = with_db_read!(db, pool => {
        sqlx::query(
            "SELECT id, at, user_id, action, outcome, detail FROM audit_log WHERE workspace_id = $1 \
             AND ($2 IS NULL OR at < $2 OR (at = $2 AND id < $3)) ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(Id(workspace_id)).bind(at).bind(id).bind(limit)
        .fetch_all(pool).await?
        .iter()
        .map(|row| -> Result<AuditRecord, sqlx::Error> {
            Ok(AuditRecord {
                id: row.id("id")?,
                at: row.time("at")?,
                user_id: row.opt_id("user_id")?,
                action: row.text("action")?,
                outcome: row.text("outcome")?,
                detail: row.json("detail")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?
    });
    Ok(events)
}
