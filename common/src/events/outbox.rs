//! An owner's outbox: the table (`<owner>_outbox`, one per service, since each service
//! owns its tables) where a change's events are appended once the change committed, and
//! the [`relay`] that publishes them to the bus in the order they were appended, deleting
//! them only once the bus confirmed them. A bus that is down holds the relay up, never the
//! change: the events wait in the table and leave when the bus is back.
//!
//! The relay wakes when this process appends, when another process sharing PostgreSQL
//! does (a notice on `kiln_outbox_<owner>`), and every second. Where several processes
//! share PostgreSQL, one drains at a time (an advisory lock), so the order holds. It
//! drains what waits as soon as it starts: in process, consumers subscribe before the
//! relays start, or the in-process bus hands those events to nobody.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Event, SharedBus};
use crate::{
    Db,
    db::{SqliteBinds, notices},
};

/// The service whose changes an outbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Model,
    App,
    Build,
}

impl Owner {
    fn table(self) -> &'static str {
        match self {
            Owner::Model => "model_outbox",
            Owner::App => "app_outbox",
            Owner::Build => "build_outbox",
        }
    }

    /// The PostgreSQL channel its appends are announced on.
    fn channel(self) -> &'static str {
        match self {
            Owner::Model => "kiln_outbox_model",
            Owner::App => "kiln_outbox_app",
            Owner::Build => "kiln_outbox_build",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Owner::Model => "model",
            Owner::App => "app",
            Owner::Build => "build",
        }
    }
}

/// At most this many events are published in one go.
const BATCH: i64 = 256;

/// How long the relay waits for a wake-up before it looks anyway.
const POLL: Duration = Duration::from_secs(1);

/// The longest pause between two attempts to reach a bus that is down.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// How long one batch may take to be confirmed: a broker that accepts the connection but
/// does not answer (blocked by its own alarms) must not hold the relay's transaction.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// `events` on `bus`, within [`PUBLISH_TIMEOUT`].
async fn publish(bus: &SharedBus, events: &[Event]) -> anyhow::Result<()> {
    match tokio::time::timeout(PUBLISH_TIMEOUT, bus.publish(events)).await {
        Ok(published) => published,
        Err(_) => anyhow::bail!("the event bus did not confirm within {PUBLISH_TIMEOUT:?}"),
    }
}

#[derive(Debug, Clone)]
pub struct Outbox {
    db: Db,
    owner: Owner,
    appended: Arc<Notify>,
}

impl Outbox {
    pub fn new(db: Db, owner: Owner) -> Self {
        Outbox { db, owner, appended: Arc::new(Notify::new()) }
    }

    /// Appends `events`, in order; on PostgreSQL with `notice` (channel, payload) sent by
    /// the same statement (the record feed's, which so costs no round trip of its own).
    pub async fn append(&self, events: &[Event], notice: Option<(&str, &str)>) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let bodies: Vec<serde_json::Value> = events
            .iter()
            .map(|event| serde_json::to_value(event).map_err(|e| sqlx::Error::Encode(Box::new(e))))
            .collect::<Result<_, _>>()?;
        let table = self.owner.table();
        match &self.db {
            Db::Postgres(pool) => {
                let (channel, payload) = notice.unwrap_or((self.owner.channel(), ""));
                let sql = format!(
                    "WITH added AS (INSERT INTO {table} (event) SELECT * FROM UNNEST($1::jsonb[]) RETURNING 1) \
                     SELECT pg_notify($2, ''), pg_notify($3, $4)"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&bodies)
                    .bind(self.owner.channel())
                    .bind(channel)
                    .bind(payload)
                    .execute(pool)
                    .await?;
            }
            Db::Sqlite(pools) => {
                let placeholders: Vec<String> = (1..=bodies.len()).map(|i| format!("(${i})")).collect();
                let sql = format!("INSERT INTO {table} (event) VALUES {}", placeholders.join(", "));
                let texts: Vec<String> = bodies.iter().map(ToString::to_string).collect();
                let bind = Box::new(move |binds: SqliteBinds| texts.iter().fold(binds, |b, t| b.bind(t.clone())));
                pools.writes.fetch_all(sql, bind).await?;
            }
        }
        self.appended.notify_one();
        Ok(())
    }

    /// [`Outbox::append`] for a change that already committed: a failure cannot undo the
    /// change, so it is logged loudly and counted (`kiln_events_lost_total`); `false` then.
    pub async fn keep(&self, events: &[Event], notice: Option<(&str, &str)>) -> bool {
        match self.append(events, notice).await {
            Ok(()) => true,
            Err(e) => {
                let subjects: Vec<&str> = events.iter().map(|e| e.subject_id.as_str()).collect();
                tracing::error!(owner = self.owner.name(), error = %e, ?subjects, "a committed change's event was not recorded");
                metrics::counter!("kiln_events_lost_total", "owner" => self.owner.name())
                    .increment(events.len() as u64);
                false
            }
        }
    }

    /// How many events wait to be published.
    pub async fn pending(&self) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT COUNT(*) FROM {}", self.owner.table());
        crate::with_db_read!(&self.db, pool => {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await
        })
    }

    /// Publishes what waits, batch by batch, until nothing does; how many rows it took.
    pub async fn drain(&self, bus: &SharedBus) -> anyhow::Result<usize> {
        let mut published = 0;
        loop {
            let batch = self.publish_batch(bus).await?;
            if batch == 0 {
                return Ok(published);
            }
            published += batch;
        }
    }

    /// Publishes the oldest waiting events (up to [`BATCH`]) and deletes them; how many
    /// rows it took (an unreadable one is taken and dropped, not published).
    async fn publish_batch(&self, bus: &SharedBus) -> anyhow::Result<usize> {
        let table = self.owner.table();
        let select = format!("SELECT seq, event FROM {table} ORDER BY seq LIMIT {BATCH}");
        let (taken, published) = match &self.db {
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // One relay at a time per outbox, whichever process it runs in.
                let lock = format!("SELECT pg_try_advisory_xact_lock(hashtext('{table}'))");
                let mine: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(lock)).fetch_one(&mut *tx).await?;
                if !mine {
                    return Ok(0);
                }
                let rows: Vec<(i64, serde_json::Value)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(select)).fetch_all(&mut *tx).await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                // The rows read, by their seqs: appends of several processes can commit out
                // of seq order, so a lower seq may become visible after a higher one was
                // read, and must not be deleted unpublished.
                let seqs: Vec<i64> = rows.iter().map(|(seq, _)| *seq).collect();
                let events = readable(self.owner, rows.into_iter().map(|(_, body)| body));
                publish(bus, &events).await?;
                let delete = format!("DELETE FROM {table} WHERE seq = ANY($1)");
                sqlx::query(sqlx::AssertSqlSafe(delete)).bind(&seqs).execute(&mut *tx).await?;
                tx.commit().await?;
                (seqs.len(), events.len())
            }
            Db::Sqlite(pools) => {
                let rows: Vec<(i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(select)).fetch_all(&pools.reader).await?;
                let taken = rows.len();
                // One writer per file: seqs commit in order, so every seq up to the last
                // read was read.
                let Some(last) = rows.last().map(|(seq, _)| *seq) else { return Ok(0) };
                // Text that is not JSON reads as null, which `readable` drops and says so.
                let bodies = rows.into_iter().map(|(_, text)| serde_json::from_str(&text).unwrap_or_default());
                let events = readable(self.owner, bodies);
                publish(bus, &events).await?;
                let delete = format!("DELETE FROM {table} WHERE seq <= $1");
                let bind = Box::new(move |binds: SqliteBinds| binds.bind(last));
                pools.writes.fetch_all(delete, bind).await?;
                (taken, events.len())
            }
        };
        metrics::counter!("kiln_events_published_total", "owner" => self.owner.name()).increment(published as u64);
        Ok(taken)
    }
}

/// The events of `bodies`; one that does not read as an event is dropped, said in the log.
fn readable(owner: Owner, bodies: impl Iterator<Item = serde_json::Value>) -> Vec<Event> {
    bodies
        .filter_map(|body| match serde_json::from_value::<Event>(body) {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::warn!(owner = owner.name(), error = %e, "an unreadable event in the outbox was dropped");
                None
            }
        })
        .collect()
}

/// Publishes `outbox`'s events to `bus` until `stopping` is cancelled (what it appends
/// meanwhile waits for the next start).
pub fn relay(outbox: Outbox, bus: SharedBus, stopping: CancellationToken) -> tokio::task::JoinHandle<()> {
    if let Db::Postgres(pool) = &outbox.db {
        let appended = outbox.appended.clone();
        let listening = stopping.clone();
        let (pool, channel) = (pool.clone(), outbox.owner.channel());
        tokio::spawn(async move {
            tokio::select! {
                () = listening.cancelled() => {}
                () = notices::listen(pool, channel, move |_| appended.notify_one()) => {}
            }
        });
    }
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            match outbox.drain(&bus).await {
                Ok(_) => {
                    pause = Duration::from_millis(100);
                    tokio::select! {
                        () = stopping.cancelled() => return,
                        () = outbox.appended.notified() => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
                // The bus (or the database) is down: appends do not hurry the next try.
                Err(e) => {
                    tracing::warn!(owner = outbox.owner.name(), error = %e, "events wait in the outbox; trying again");
                    tokio::select! {
                        () = stopping.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    })
}
