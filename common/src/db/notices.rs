//! PostgreSQL's `NOTIFY`, as the processes sharing a database tell each other what
//! happened (a session ended, a record changed): one way to send a notice, and one way to
//! hear a channel for as long as the pool is open, listening again after a lost connection.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

/// What a listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// A notice's payload.
    Notice(&'a str),
    /// The connection was lost (and is being remade): notices sent meanwhile are gone.
    MaybeMissed,
}

/// Sends `payload` on `channel` to every process listening, this one included.
pub async fn notify(pool: &PgPool, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(pool).await.map(drop)
}

/// Hands what `channel` carries to `heard` until `pool` closes. A connection that cannot
/// be made is tried again a second later; one that is lost is remade at once, after
/// `heard` is told notices may have been missed.
pub async fn listen(pool: PgPool, channel: &'static str, mut heard: impl FnMut(Heard<'_>) + Send) {
    let retry = Duration::from_secs(1);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(channel, error = %e, "cannot listen; trying again");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(channel).await {
            tracing::warn!(channel, error = %e, "cannot listen; trying again");
            tokio::time::sleep(retry).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => heard(Heard::Notice(notification.payload())),
                // The connection was lost and remade.
                Ok(None) => heard(Heard::MaybeMissed),
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(channel, error = %e, "lost the listening connection; listening again");
                    heard(Heard::MaybeMissed);
                    break;
                }
            }
        }
    }
}
