//! [`GroupCommit`]: the single-statement writes of one SQLite file, committed in groups.
//!
//! A file has one writer connection, and sqlx-sqlite runs it on a thread of its own, so
//! each write is a hand-off to that thread and back; on a busy host each hand-off waits
//! for a time slice, and every write queues behind the previous one's. Here one task
//! owns the queue: it takes every write waiting, sends them to the writer's thread as one
//! multi-statement query (`BEGIN IMMEDIATE; w1; w2; …; COMMIT`), and hands each caller
//! its own rows. One hand-off and one commit serve the whole group; a lone write runs on
//! its own, so nothing waits for company.
//!
//! Each write stays its own atomic step: SQLite undoes a failed statement without
//! ending the transaction around it, so a write that fails (a unique value taken, a
//! foreign key) gets its error, the writes before it commit, and the ones after it run
//! in the next group. If the group cannot commit, nothing of it was written, and each
//! write runs again on its own and reports its own outcome.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures::TryStreamExt;
use sqlx::{
    Arguments, Either, Encode, Executor, Sqlite, Type,
    error::BoxDynError,
    sqlite::{SqliteArguments, SqliteConnection, SqliteRow},
};
use tokio::sync::{mpsc, oneshot};

use super::SqliteConns;

/// At most this many writes in one group.
const MAX_GROUP: usize = 32;
/// At most this many bound values in one group (SQLite allows 32 766).
const MAX_GROUP_VALUES: usize = 16_000;

/// Binds one write's values, in the order of its `$1, $2, …` placeholders.
pub type Binder = Box<dyn Fn(SqliteBinds) -> SqliteBinds + Send + Sync>;

/// A statement's arguments, bound the way a query's are (`.bind(value)` in order), so the
/// code that binds a query binds these too. The first value that fails to encode is kept
/// as the error.
#[derive(Default)]
pub struct SqliteBinds {
    args: SqliteArguments,
    error: Option<BoxDynError>,
}

impl SqliteBinds {
    pub fn bind<'q, T: Encode<'q, Sqlite> + Type<Sqlite> + 'q>(mut self, value: T) -> Self {
        if self.error.is_none()
            && let Err(e) = self.args.add(value)
        {
            self.error = Some(e);
        }
        self
    }
}

struct Write {
    sql: String,
    bind: Binder,
    done: oneshot::Sender<Result<Vec<SqliteRow>, sqlx::Error>>,
}

/// The queue of one file's writes; cheap to clone. Its task ends with the last clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Write>,
    groups: Arc<AtomicU64>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("closed", &self.queue.is_closed()).finish()
    }
}

impl GroupCommit {
    /// Starts the task that runs `writer`'s grouped writes.
    pub fn start(writer: SqliteConns) -> Self {
        let (queue, waiting) = mpsc::channel(1024);
        let groups = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(writer, waiting, groups.clone()));
        GroupCommit { queue, groups }
    }

    /// How many groups of two writes or more were sent so far.
    pub fn groups(&self) -> u64 {
        self.groups.load(Ordering::Relaxed)
    }

    /// Runs one write statement (`$n` placeholders, values from `bind`) and returns its
    /// rows (`RETURNING`). It must be a single statement that does not open or end a
    /// transaction. Once queued, it runs even if the caller stops waiting.
    pub async fn fetch_all(&self, sql: String, bind: Binder) -> Result<Vec<SqliteRow>, sqlx::Error> {
        let (done, outcome) = oneshot::channel();
        self.queue.send(Write { sql, bind, done }).await.map_err(|_| sqlx::Error::PoolClosed)?;
        outcome.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn run(writer: SqliteConns, mut waiting: mpsc::Receiver<Write>, groups: Arc<AtomicU64>) {
    let mut carried: Option<Write> = None;
    loop {
        let first = match carried.take() {
            Some(write) => write,
            None => match waiting.recv().await {
                Some(write) => write,
                None => return,
            },
        };
        // The writes that arrive while the connection is busy elsewhere join this group.
        let mut conn = match writer.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = first.done.send(Err(same_error(&e)));
                while let Ok(write) = waiting.try_recv() {
                    let _ = write.done.send(Err(same_error(&e)));
                }
                continue;
            }
        };
        let mut group = vec![first];
        // A write's value count is known once it is bound; its placeholders bound it.
        let mut values = 0;
        while group.len() < MAX_GROUP {
            let Ok(next) = waiting.try_recv() else { break };
            values += next.sql.matches('$').count();
            if values > MAX_GROUP_VALUES {
                carried = Some(next);
                break;
            }
            group.push(next);
        }
        while group.len() > 1 {
            groups.fetch_add(1, Ordering::Relaxed);
            group = run_group(&mut conn, group).await;
        }
        // A lone write (or the last one left of a group) needs no transaction around it.
        run_alone(&mut conn, group).await;
    }
}

/// Runs each write on its own (autocommit).
async fn run_alone(conn: &mut SqliteConnection, writes: Vec<Write>) {
    for write in writes {
        let binds = (write.bind)(SqliteBinds::default());
        let outcome = match binds.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => {
                let query = sqlx::query_with(sqlx::AssertSqlSafe(write.sql), binds.args);
                query.fetch_all(&mut *conn).await
            }
        };
        let _ = write.done.send(outcome);
    }
}

/// Runs `writes` in one transaction; returns the writes still to run: those after a
/// write that failed.
async fn run_group(conn: &mut SqliteConnection, writes: Vec<Write>) -> Vec<Write> {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut binds = SqliteBinds::default();
    for write in &writes {
        sql.push_str(&shift_placeholders(&write.sql, binds.args.len()));
        sql.push_str(";\n");
        binds = (write.bind)(binds);
    }
    sql.push_str("COMMIT");
    if binds.error.is_some() {
        // Alone, the write whose value does not encode says so, and only to its caller.
        run_alone(conn, writes).await;
        return Vec::new();
    }
    // Statement 0 is BEGIN, 1..=n the writes, n + 1 COMMIT.
    let mut rows: Vec<Vec<SqliteRow>> = Vec::with_capacity(writes.len());
    let mut current = Vec::new();
    let mut finished = 0;
    let mut failed = None;
    {
        let mut results = (&mut *conn).fetch_many(sqlx::query_with(sqlx::AssertSqlSafe(sql), binds.args));
        loop {
            match results.try_next().await {
                Ok(Some(Either::Right(row))) => current.push(row),
                Ok(Some(Either::Left(_))) => {
                    if (1..=writes.len()).contains(&finished) {
                        rows.push(std::mem::take(&mut current));
                    }
                    finished += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    let Some(error) = failed else {
        for (write, rows) in writes.into_iter().zip(rows) {
            let _ = write.done.send(Ok(rows));
        }
        return Vec::new();
    };
    if !(1..=writes.len()).contains(&finished) || (&mut *conn).execute("COMMIT").await.is_err() {
        // BEGIN or COMMIT failed, or the failed write's error ended the transaction (an
        // I/O error, say): nothing of the group was written. Each write runs again alone
        // and tells its own outcome.
        let _ = (&mut *conn).execute("ROLLBACK").await;
        run_alone(conn, writes).await;
        return Vec::new();
    }
    // Write number `finished` failed and SQLite undid that statement alone; the ones
    // before it are committed, the ones after it run next.
    let mut writes = writes.into_iter();
    for (write, rows) in writes.by_ref().take(rows.len()).zip(rows) {
        let _ = write.done.send(Ok(rows));
    }
    if let Some(write) = writes.next() {
        let _ = write.done.send(Err(error));
    }
    writes.collect()
}

/// `error` once more, for another caller of a group that could not start.
fn same_error(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// `sql` with every `$n` placeholder outside quotes renumbered `$(n + by)`: a write's
/// statement placed after others whose values come first.
fn shift_placeholders(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices();
    while let Some((at, c)) = chars.next() {
        match quote {
            // A doubled quote inside quotes reads as two quotes: closed, then reopened.
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '$' => {
                let digits = sql[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
                if let Ok(n) = sql[at + 1..at + 1 + digits].parse::<usize>() {
                    out.push('$');
                    out.push_str(&(n + by).to_string());
                    for _ in 0..digits {
                        chars.next();
                    }
                    continue;
                }
            }
            None => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::{Row, sqlite::SqliteConnectOptions};

    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes_only() {
        let sql = r#"INSERT INTO "t$1" ("a", "b") SELECT $1, $12 WHERE 'it''s $2' <> $2"#;
        assert_eq!(shift_placeholders(sql, 5), r#"INSERT INTO "t$1" ("a", "b") SELECT $6, $17 WHERE 'it''s $2' <> $7"#);
        assert_eq!(shift_placeholders(sql, 0), sql);
        assert_eq!(shift_placeholders("SELECT '$' || $", 3), "SELECT '$' || $");
    }

    async fn file() -> (tempfile::TempDir, SqliteConns, GroupCommit) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true);
        let writer = SqliteConns::open(options, 1, Duration::from_secs(5), None).await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
            .execute(&writer)
            .await
            .unwrap();
        let writes = GroupCommit::start(writer.clone());
        (dir, writer, writes)
    }

    fn insert(writes: &GroupCommit, id: i64, name: &str) -> tokio::task::JoinHandle<Result<Vec<i64>, sqlx::Error>> {
        let (writes, name) = (writes.clone(), name.to_string());
        tokio::spawn(async move {
            let bind: Binder = Box::new(move |binds| binds.bind(id).bind(name.clone()));
            let rows = writes.fetch_all("INSERT INTO t (id, name) VALUES ($1, $2) RETURNING id".into(), bind).await?;
            Ok(rows.iter().map(|row| row.get::<i64, _>(0)).collect())
        })
    }

    /// Holds the writer until `n` writes wait in the queue, so they run as one group.
    async fn queued(writes: &GroupCommit, writer: &SqliteConns, n: usize, spawn: impl FnOnce()) {
        let held = writer.acquire().await.unwrap();
        spawn();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // One write is taken by the task, which then waits for the connection.
        while writes.queue.max_capacity() - writes.queue.capacity() < n - 1 {
            assert!(tokio::time::Instant::now() < deadline, "the writes never queued");
            tokio::task::yield_now().await;
        }
        drop(held);
    }

    #[tokio::test]
    async fn waiting_writes_commit_as_one_group_and_each_gets_its_own_rows() {
        let (_dir, writer, writes) = file().await;
        let mut handles = Vec::new();
        queued(&writes, &writer, 10, || handles = (1..=10).map(|id| insert(&writes, id, &format!("n{id}"))).collect())
            .await;
        for (id, handle) in (1..=10).zip(handles) {
            assert_eq!(handle.await.unwrap().unwrap(), vec![id]);
        }
        assert_eq!(writes.groups(), 1);
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&writer).await.unwrap();
        assert_eq!(count, 10);
    }

    #[tokio::test]
    async fn a_failed_write_fails_alone_and_the_others_commit() {
        let (_dir, writer, writes) = file().await;
        insert(&writes, 100, "taken").await.unwrap().unwrap();
        let mut handles = Vec::new();
        queued(&writes, &writer, 4, || {
            handles = vec![
                insert(&writes, 1, "a"),
                insert(&writes, 2, "taken"),
                insert(&writes, 3, "c"),
                insert(&writes, 4, "d"),
            ]
        })
        .await;
        let outcomes: Vec<_> = futures::future::join_all(handles).await.into_iter().map(|h| h.unwrap()).collect();
        assert_eq!(outcomes[0].as_ref().unwrap(), &vec![1]);
        let Err(sqlx::Error::Database(db)) = &outcomes[1] else { panic!("expected a unique violation: {outcomes:?}") };
        assert!(db.is_unique_violation(), "{db}");
        assert_eq!(outcomes[2].as_ref().unwrap(), &vec![3]);
        assert_eq!(outcomes[3].as_ref().unwrap(), &vec![4]);
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM t ORDER BY id").fetch_all(&writer).await.unwrap();
        assert_eq!(names, ["a", "c", "d", "taken"]);
        // The writer is usable and outside any transaction afterwards.
        let mut conn = writer.acquire().await.unwrap();
        sqlx::Connection::begin(&mut *conn).await.unwrap().commit().await.unwrap();
    }

    #[tokio::test]
    async fn writes_fail_with_pool_closed_once_the_file_is_closed() {
        let (_dir, writer, writes) = file().await;
        writer.close().await;
        let outcome = insert(&writes, 1, "a").await.unwrap();
        assert!(matches!(outcome, Err(sqlx::Error::PoolClosed)), "{outcome:?}");
    }
}
