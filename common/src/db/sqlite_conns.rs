//! [`SqliteConns`]: a bounded set of connections to one SQLite file, handed out and taken
//! back without sqlx's pool. sqlx pings a pooled connection when it is released and
//! again before it is handed out; on SQLite each ping is a round trip to the
//! connection's thread. With one writer, both sat inside the critical section every
//! write queues for. A file does not hang up, so a connection goes straight back to the
//! idle list: a write costs one hand-off to the connection's thread and back.
//!
//! Also where SQLite's statement timeout lives: SQLite has none, so a connection opened
//! with a limit gets a progress handler that interrupts whatever it runs once the
//! checkout that started it is older than the limit (`SQLITE_INTERRUPT`, told to the
//! client as 504 like PostgreSQL's `statement_timeout`).

use std::{
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, future::BoxFuture, stream::BoxStream};
use sqlx::{
    ConnectOptions, Connection, Either, Execute, Executor, SqlStr, Sqlite,
    sqlite::{SqliteConnectOptions, SqliteConnection, SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// SQLite's result code for an interrupted statement.
pub const SQLITE_INTERRUPT: &str = "9";

/// How many VM instructions SQLite runs between two looks at the clock.
const PROGRESS_EVERY: i32 = 4_000;

/// A bounded set of connections to one SQLite file; cheap to clone.
#[derive(Clone)]
pub struct SqliteConns {
    inner: Arc<Inner>,
}

struct Inner {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<Slot>>,
    permits: Arc<Semaphore>,
    max: usize,
    acquire_timeout: Duration,
    statement_timeout: Option<Duration>,
}

/// A connection and, when it has a statement timeout, the deadline its progress handler
/// reads (milliseconds since [`EPOCH`]; 0 for none).
struct Slot {
    conn: SqliteConnection,
    deadline: Arc<AtomicU64>,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

impl std::fmt::Debug for SqliteConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConns")
            .field("file", &self.inner.options.get_filename())
            .field("available", &self.inner.permits.available_permits())
            .finish()
    }
}

impl SqliteConns {
    /// Up to `max` connections made with `options`; the first is made now, so a file that
    /// cannot be opened says so at once.
    pub async fn open(
        options: SqliteConnectOptions,
        max: u32,
        acquire_timeout: Duration,
        statement_timeout: Option<Duration>,
    ) -> Result<Self, sqlx::Error> {
        let inner = Arc::new(Inner {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            max: max.max(1) as usize,
            acquire_timeout,
            statement_timeout,
        });
        let first = inner.connect().await?;
        inner.idle.lock().unwrap_or_else(PoisonError::into_inner).push(first);
        Ok(SqliteConns { inner })
    }

    pub fn connect_options(&self) -> &SqliteConnectOptions {
        &self.inner.options
    }

    /// A connection of the set, waiting for one to come back when all are out; after the
    /// acquire timeout, `PoolTimedOut`.
    pub async fn acquire(&self) -> Result<SqliteConn, sqlx::Error> {
        let permit = tokio::time::timeout(self.inner.acquire_timeout, self.inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let slot = match idle {
            Some(slot) => slot,
            None => self.inner.connect().await?,
        };
        if let Some(limit) = self.inner.statement_timeout {
            slot.deadline.store(now_ms() + limit.as_millis() as u64, Ordering::Relaxed);
        }
        Ok(SqliteConn { slot: Some(slot), inner: self.inner.clone(), discard: false, _permit: permit })
    }

    /// Connections out now, and how many may be.
    pub fn usage(&self) -> (usize, usize) {
        (self.inner.max.saturating_sub(self.inner.permits.available_permits()), self.inner.max)
    }

    pub fn is_closed(&self) -> bool {
        self.inner.permits.is_closed()
    }

    /// Refuses further checkouts and closes the idle connections; those out close when
    /// they come back.
    pub async fn close(&self) {
        self.inner.permits.close();
        let idle: Vec<Slot> = std::mem::take(&mut *self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for slot in idle {
            let _ = slot.conn.close().await;
        }
    }
}

impl Inner {
    async fn connect(&self) -> Result<Slot, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        let deadline = Arc::new(AtomicU64::new(0));
        if self.statement_timeout.is_some() {
            let deadline = deadline.clone();
            conn.lock_handle().await?.set_progress_handler(PROGRESS_EVERY, move || {
                let at = deadline.load(Ordering::Relaxed);
                at == 0 || now_ms() < at
            });
        }
        Ok(Slot { conn, deadline })
    }
}

/// A connection out of a [`SqliteConns`]; goes back when dropped. A transaction left
/// open on it was rolled back by sqlx's `Transaction` when that was dropped, before.
pub struct SqliteConn {
    slot: Option<Slot>,
    inner: Arc<Inner>,
    discard: bool,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for SqliteConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Only `drop` takes the slot.
        &self.slot.as_ref().expect("connection present until dropped").conn
    }
}

impl std::ops::DerefMut for SqliteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.slot.as_mut().expect("connection present until dropped").conn
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        if self.discard || self.inner.permits.is_closed() {
            // Dropping the connection stops its thread and closes it; the next checkout
            // opens a fresh one.
            return;
        }
        self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).push(slot);
    }
}

impl SqliteConn {
    /// Closes this connection instead of handing it out again: for one whose settings
    /// could not be restored.
    pub fn close_on_drop(&mut self) {
        self.discard = true;
    }
}

/// A statement run on the set: one connection for the statement's length, as sqlx's
/// pool does. Rows are gathered before they are yielded, which every caller does anyway
/// (pages are bounded).
impl<'p> Executor<'p> for &'_ SqliteConns {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        let conns = self.clone();
        futures::stream::once(async move {
            let mut conn = conns.acquire().await?;
            conn.fetch_many(query).try_collect::<Vec<_>>().await
        })
        .map_ok(|items| futures::stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        let conns = self.clone();
        Box::pin(async move { conns.acquire().await?.fetch_optional(query).await })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let conns = self.clone();
        Box::pin(async move { conns.acquire().await?.prepare_with(sql, parameters).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn conns(max: u32, statement_timeout: Option<Duration>) -> (tempfile::TempDir, SqliteConns) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true);
        let conns = SqliteConns::open(options, max, Duration::from_millis(200), statement_timeout).await.unwrap();
        (dir, conns)
    }

    #[tokio::test]
    async fn connections_are_bounded_and_come_back() {
        let (_dir, conns) = conns(2, None).await;
        let a = conns.acquire().await.unwrap();
        let b = conns.acquire().await.unwrap();
        let third = conns.acquire().await;
        assert!(matches!(third, Err(sqlx::Error::PoolTimedOut)), "a third checkout waits, then times out");
        drop(a);
        let again = conns.acquire().await.unwrap();
        drop((b, again));
        let n: i64 = sqlx::query_scalar("SELECT 41 + 1").fetch_one(&conns).await.unwrap();
        assert_eq!(n, 42);
        conns.close().await;
        assert!(matches!(conns.acquire().await, Err(sqlx::Error::PoolClosed)));
    }

    #[tokio::test]
    async fn a_dropped_transaction_is_rolled_back_before_the_next_use() {
        let (_dir, conns) = conns(1, None).await;
        sqlx::query("CREATE TABLE t (n INTEGER)").execute(&conns).await.unwrap();
        {
            let mut conn = conns.acquire().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&conns).await.unwrap();
        assert_eq!(count, 0);
    }

    #[tokio::test]
    async fn a_statement_past_the_timeout_is_interrupted_and_the_connection_lives_on() {
        let (_dir, conns) = conns(1, Some(Duration::from_millis(100))).await;
        // Counts to a billion: seconds of work, cut off after 100 ms.
        let endless = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) \
                       SELECT count(*) FROM c";
        let err = sqlx::query(endless).fetch_one(&conns).await.unwrap_err();
        let sqlx::Error::Database(db) = &err else { panic!("expected a database error, got {err:?}") };
        assert_eq!(db.code().as_deref(), Some(SQLITE_INTERRUPT), "{err}");
        let n: i64 = sqlx::query_scalar("SELECT 7").fetch_one(&conns).await.unwrap();
        assert_eq!(n, 7, "the next checkout has a fresh deadline");
    }
}
