//! Changes to records as they commit, for whoever watches them (EntityService's
//! `WatchEntities`, a typed service's `Watch`): within the process through a broadcast channel; where PostgreSQL holds the
//! records, through its `NOTIFY`, so that a change made by any process reaches the
//! watchers of every process (each one listens, and hears its own changes that way).
//! A change names its record; watchers read the record itself, so nothing of it travels
//! through the database's notifications. Live, not durable: a watcher that falls behind
//! is told so, and a process that is down hears nothing.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::db::notices::{self, Heard};

/// The PostgreSQL channel changes go through.
pub const CHANNEL: &str = "kiln_record_changes";

/// How many changes a watcher may be behind before it is told it missed some.
const BACKLOG: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// One committed change to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    pub workspace: Uuid,
    /// The model's plural.
    pub model: String,
    pub id: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone)]
pub struct ChangeFeed {
    local: broadcast::Sender<RecordChange>,
    /// Where changes are sent (and heard) when several processes share the records.
    postgres: Option<PgPool>,
}

impl ChangeFeed {
    /// Changes within this process (SQLite: one process serves a workspace's file).
    pub fn local() -> Self {
        ChangeFeed { local: broadcast::channel(BACKLOG).0, postgres: None }
    }

    /// Changes through PostgreSQL: a task listens on [`CHANNEL`] (and listens again
    /// after a lost connection) and hands what it hears to this process's watchers.
    pub fn postgres(pool: PgPool) -> Self {
        let feed = ChangeFeed { local: broadcast::channel(BACKLOG).0, postgres: Some(pool.clone()) };
        let local = feed.local.clone();
        tokio::spawn(notices::listen(pool, CHANNEL, move |heard| match heard {
            Heard::Notice(payload) => match serde_json::from_str::<RecordChange>(payload) {
                Ok(change) => drop(local.send(change)),
                Err(e) => tracing::warn!(error = %e, "an unreadable record change was ignored"),
            },
            // Live, not durable: changes made while the connection was down are not replayed.
            Heard::MaybeMissed => {}
        }));
        feed
    }

    /// Tells every watcher (of every process sharing the records) about `change`.
    pub async fn publish(&self, change: RecordChange) {
        match &self.postgres {
            Some(pool) => {
                let payload = serde_json::to_string(&change).unwrap_or_default();
                if let Err(e) = notices::notify(pool, CHANNEL, &payload).await {
                    tracing::warn!(error = %e, "a record change was not announced");
                }
            }
            // No one listening is not an error.
            None => drop(self.local.send(change)),
        }
    }

    /// The feed that reaches every process sharing `db`'s records.
    pub fn of(db: &crate::Db) -> Self {
        match db {
            crate::Db::Postgres(pool) => ChangeFeed::postgres(pool.clone()),
            crate::Db::Sqlite(_) => ChangeFeed::local(),
        }
    }

    /// The changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RecordChange> {
        self.local.subscribe()
    }
}
