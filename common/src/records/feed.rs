//! Changes to records as they commit, for whoever watches them (EntityService's
//! `WatchEntities`, a typed service's `Watch`): within the process through a broadcast channel; where PostgreSQL holds the
//! records, through its `NOTIFY`, so that a change made by any process reaches the
//! watchers of every process (each one listens, and hears its own changes that way).
//! A change names its record; watchers read the record itself, so nothing of it travels
//! through the database's notifications. Live, not durable: a watcher that falls behind
//! is told so, and a process that is down hears nothing.
//!
//! The durable account of a change is its event: given an outbox, the feed appends each
//! change's event to it as it announces the change (on PostgreSQL in the same statement
//! as the notice), and the outbox's relay takes it to the event bus.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{
    db::notices::{self, Heard},
    events::{Event, outbox::Outbox},
};

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

impl ChangeKind {
    /// The kind of the change's event.
    pub fn event_kind(self) -> &'static str {
        match self {
            ChangeKind::Created => "entity.created",
            ChangeKind::Updated => "entity.updated",
            ChangeKind::Deleted => "entity.deleted",
        }
    }
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
    /// Where each change's event goes, for the event bus.
    outbox: Option<Outbox>,
}

impl ChangeFeed {
    /// Changes within this process (SQLite: one process serves a workspace's file).
    pub fn local() -> Self {
        ChangeFeed { local: broadcast::channel(BACKLOG).0, postgres: None, outbox: None }
    }

    /// Changes through PostgreSQL: a task listens on [`CHANNEL`] (and listens again
    /// after a lost connection) and hands what it hears to this process's watchers.
    pub fn postgres(pool: PgPool) -> Self {
        let feed = ChangeFeed { local: broadcast::channel(BACKLOG).0, postgres: Some(pool.clone()), outbox: None };
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

    /// Appends each change's event to `outbox` as the change is announced.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    pub fn has_outbox(&self) -> bool {
        self.outbox.is_some()
    }

    /// Tells every watcher (of every process sharing the records) about `change`, and
    /// the outbox (if any) about its `event`.
    pub async fn publish(&self, change: RecordChange, event: Event) {
        let payload = serde_json::to_string(&change).unwrap_or_default();
        // On PostgreSQL the outbox's statement carries the watchers' notice too.
        let noticed = match (&self.outbox, &self.postgres) {
            (Some(outbox), Some(_)) => outbox.keep(&[event], Some((CHANNEL, &payload))).await,
            (Some(outbox), None) => {
                outbox.keep(&[event], None).await;
                false
            }
            (None, _) => false,
        };
        match &self.postgres {
            // The outbox's statement carried the notice.
            Some(_) if noticed => {}
            Some(pool) => {
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
