//! The platform database: PostgreSQL or SQLite behind one small interface.
//!
//! [`Db`] holds a pool of either kind. Queries are written once in the SQL both dialects
//! accept (`$1` placeholders, `RETURNING`, `ON CONFLICT`) and run through [`with_db!`],
//! which expands the same code for each pool ([`with_db_read!`] for read-only statements
//! that may use SQLite's readers, see [`SqlitePools`]). Where the dialects differ (DDL, types), each
//! has its own migration folder. Ids are bound as [`Id`]: `uuid` on PostgreSQL, hyphenated
//! text on SQLite, so rows read the same in `psql` and `sqlite3`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::Connection as _;
use sqlx::{
    Database, Decode, Encode, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};
use uuid::Uuid;

mod group_commit;
pub mod notices;
mod sqlite_conns;
pub use group_commit::{Binder, GroupCommit, SqliteBinds};
pub use sqlite_conns::{SQLITE_INTERRUPT, SqliteConn, SqliteConns};

/// A pool of PostgreSQL or SQLite connections.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePools),
}

/// One SQLite file as it is best used from many tasks: a single writer connection, so
/// writes queue for it instead of spinning on `SQLITE_BUSY`, and a set of read-only
/// connections that WAL lets read while the writer writes; both are [`SqliteConns`].
/// `synchronous=NORMAL`: WAL keeps the database consistent across a crash; a power cut
/// may lose the last commits. Reads are cut off after the statement timeout, if any;
/// writes are by key and schema changes must run to their end, so the writer has none.
///
/// Checkpoints run beside them, off the request path: a task copies the WAL back into
/// the database every [`CHECKPOINT_EVERY`] on a connection of its own. Left to SQLite's
/// automatic checkpoint, the WAL grows while readers keep old snapshots, and the write
/// that finally checkpoints it pays for all of it (seconds, on a busy file).
#[derive(Debug, Clone)]
pub struct SqlitePools {
    pub writer: SqliteConns,
    /// Single-statement writes on `writer`, committed in groups when they queue.
    pub writes: GroupCommit,
    pub reader: SqliteConns,
    /// The reader's statement timeout, for the files opened beside this one.
    pub read_timeout: Option<Duration>,
    /// Dropped with the last clone of these pools, which stops the checkpoint task.
    _checkpoints: std::sync::Arc<tokio::sync::oneshot::Sender<()>>,
}

/// How often the WAL of an open SQLite file is checkpointed.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints `options`' file until `stop` fires or is dropped.
async fn checkpoint(options: SqliteConnectOptions, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&options).await else { return };
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                // PASSIVE: copies what no reader still needs, never waits for anyone.
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
                    tracing::debug!(error = %e, "checkpoint failed; retrying");
                }
            }
        }
    }
    let _ = conn.close().await;
}

/// Keeps `kiln_db_pool_connections` (by pool, `in_use` and `max`) up to date from
/// `usage` (each pool's connections out and its bound) until it says the pools closed.
async fn report_pool_usage(usage: impl Fn() -> Option<Vec<(&'static str, (usize, usize))>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(pools) = usage() else { return };
        for (pool, (in_use, max)) in pools {
            metrics::gauge!("kiln_db_pool_connections", "pool" => pool, "state" => "in_use").set(in_use as f64);
            metrics::gauge!("kiln_db_pool_connections", "pool" => pool, "state" => "max").set(max as f64);
        }
    }
}

impl SqlitePools {
    /// Opens (creating it if need be) the database file `path`.
    pub async fn open(path: &std::path::Path, readers: u32, read_timeout: Option<Duration>) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Once checkpointed, the WAL file shrinks back to at most this.
            .pragma("journal_size_limit", (64 << 20).to_string());
        let opening = || format!("opening SQLite database {}", path.display());
        // The writer first: it creates the file and switches it to WAL.
        let wait = Duration::from_secs(10);
        let writer =
            SqliteConns::open(options.clone().create_if_missing(true), 1, wait, None).await.with_context(opening)?;
        let reader = SqliteConns::open(options.clone().read_only(true), readers, wait, read_timeout)
            .await
            .with_context(opening)?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(checkpoint(options, stopped));
        let writes = GroupCommit::start(writer.clone());
        Ok(SqlitePools { writer, writes, reader, read_timeout, _checkpoints: std::sync::Arc::new(stop) })
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// The database file.
    pub fn path(&self) -> std::path::PathBuf {
        self.writer.connect_options().get_filename().to_path_buf()
    }
}

/// Runs the same block against whichever pool `db` holds: `$pool` is bound to a `&PgPool`
/// or to SQLite's writer, a `&SqliteConns`.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($crate::db::SqlitePools { writer: $pool, .. }) => $body,
        }
    };
}

/// [`with_db!`] for a block that only reads: on SQLite `$pool` is the reader pool.
#[macro_export]
macro_rules! with_db_read {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($crate::db::SqlitePools { reader: $pool, .. }) => $body,
        }
    };
}

/// A service's migrations, for either dialect. Each service migrates only the tables it
/// owns, tracked in a table of its own (`_kiln_migrations_<owner>`), so services apply
/// theirs independently and in any order. Declared with [`crate::migrations!`].
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub owner: &'static str,
    pub postgres: fn() -> Vec<Migration>,
    pub sqlite: fn() -> Vec<Migration>,
}

/// One migration of a service (see [`crate::migrations!`]).
pub fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(version, name.into(), MigrationType::Simple, sqlx::SqlSafeStr::into_sql_str(sql), false)
}

/// A service's [`Migrations`], from `migrations/postgres/<name>.sql` and
/// `migrations/sqlite/<name>.sql` in the calling crate:
/// `migrations!("model": 1 "0001_models")`.
#[macro_export]
macro_rules! migrations {
    ($owner:literal: $($version:literal $name:literal),* $(,)?) => {
        $crate::db::Migrations {
            owner: $owner,
            postgres: || vec![$($crate::db::migration(
                $version,
                $name,
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres/", $name, ".sql")),
            )),*],
            sqlite: || vec![$($crate::db::migration(
                $version,
                $name,
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite/", $name, ".sql")),
            )),*],
        }
    };
}

/// How Kiln uses its database, beyond where it is.
#[derive(Debug, Clone, Copy)]
pub struct DbOptions {
    /// Longest a statement of a request may run: a sort over an unindexed column of a
    /// huge table is cut off instead of holding a connection others wait for. On SQLite
    /// it bounds reads (see [`SqlitePools`]). Migrations are not limited.
    pub statement_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions { statement_timeout: Duration::from_secs(5) }
    }
}

impl Db {
    /// Connects to `url`, creating the SQLite file or the PostgreSQL database when it does
    /// not exist. Each service then applies its own [`Migrations`] ([`Db::migrate`]).
    pub async fn connect(url: &str, options: DbOptions) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let path = SqliteConnectOptions::from_str(url)
                .map_err(|_| anyhow::anyhow!("KILN_DATABASE_URL: `{}` is not a valid SQLite URL", redact_url(url)))?
                .get_filename()
                .to_path_buf();
            let pools = SqlitePools::open(&path, 8, Some(options.statement_timeout)).await?;
            let (writer, reader) = (pools.writer.clone(), pools.reader.clone());
            tokio::spawn(report_pool_usage(move || {
                (!writer.is_closed() && !reader.is_closed())
                    .then(|| [("sqlite_writer", writer.usage()), ("sqlite_reader", reader.usage())].to_vec())
            }));
            Ok(Db::Sqlite(pools))
        } else {
            let base = PgConnectOptions::from_str(url).map_err(|_| {
                anyhow::anyhow!("KILN_DATABASE_URL: `{}` is not a valid PostgreSQL URL", redact_url(url))
            })?;
            let pool = connect_postgres(&base, options).await?;
            let watched = pool.clone();
            tokio::spawn(report_pool_usage(move || {
                let max = watched.options().get_max_connections() as usize;
                let in_use = (watched.size() as usize).saturating_sub(watched.num_idle());
                (!watched.is_closed()).then(|| vec![("postgres", (in_use, max))])
            }));
            Ok(Db::Postgres(pool))
        }
    }

    /// Applies `migrations` not applied yet. Safe to run from every process at once: the
    /// migrator holds a lock (PostgreSQL's advisory lock, SQLite's writer).
    pub async fn migrate(&self, migrations: &Migrations) -> anyhow::Result<()> {
        let context = || format!("running {}'s database migrations", migrations.owner);
        let migrator = |list: fn() -> Vec<Migration>| {
            let mut migrator = Migrator::with_migrations(list());
            migrator.dangerous_set_table_name(format!("_kiln_migrations_{}", migrations.owner));
            migrator
        };
        match self {
            Db::Postgres(pool) => {
                let migrator = migrator(migrations.postgres);
                // On a connection of its own, free of the statement timeout, closed after.
                let mut conn = pool.acquire().await.with_context(context)?.detach();
                sqlx::query("SET statement_timeout = 0").execute(&mut conn).await.with_context(context)?;
                let migrated = migrator.run(&mut conn).await.with_context(context);
                sqlx::Connection::close(conn).await.ok();
                migrated
            }
            Db::Sqlite(pools) => {
                let migrator = migrator(migrations.sqlite);
                let mut conn = pools.writer.acquire().await.with_context(context)?;
                migrator.run(&mut *conn).await.with_context(context)
            }
        }
    }

    /// The statement that opens a transaction which reads before it writes. SQLite's
    /// default (deferred) transaction takes the write lock at its first write, and if
    /// another connection to the file wrote after the transaction's first read, that write
    /// fails at once with SQLITE_BUSY_SNAPSHOT (517), which the busy timeout does not wait
    /// out. IMMEDIATE takes the lock at the start, waiting for it like any write.
    pub fn begin_write(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "BEGIN",
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
        }
    }

    pub fn dialect(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pools) => pools.close().await,
        }
    }
}

/// How long a PostgreSQL connection may sit idle before it is pinged on its next use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

async fn connect_postgres(base: &PgConnectOptions, db: DbOptions) -> anyhow::Result<PgPool> {
    let timeout_ms = db.statement_timeout.as_millis().to_string();
    let options = base.clone().options([("statement_timeout", timeout_ms.as_str())]);
    // A request waits this long for a connection before it is told the database is unavailable.
    let pool_options = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        // sqlx pings a connection before handing it out: a round trip to the server on
        // every query. Only a connection that sat idle may have been cut meanwhile (one
        // that failed in use is closed when it comes back), so only those are pinged.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    match pool_options.clone().connect_with(options.clone()).await {
        Ok(pool) => Ok(pool),
        // 3D000: invalid_catalog_name, the database does not exist yet.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let name = options.get_database().unwrap_or("postgres").to_string();
            create_postgres_database(base, &name).await?;
            pool_options.connect_with(options).await.with_context(|| format!("connecting to database {name}"))
        }
        Err(e) => Err(e).context("connecting to PostgreSQL"),
    }
}

/// `url` with its password, if any, replaced by `***`: for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

async fn create_postgres_database(options: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone().database("postgres"))
        .await
        .context("connecting to the `postgres` database to create the configured one")?;
    let sql = format!("CREATE DATABASE {}", quote_ident(name));
    let result = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await;
    admin.close().await;
    match result {
        Ok(_) => {
            tracing::info!(database = name, "created database");
            Ok(())
        }
        // 42P04: duplicate_database, another role created it first.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating database {name} (does the role have CREATEDB?)")),
    }
}

/// The current time at the precision both databases keep and the API shows
/// (microseconds). SQLite keeps times as text and compares them as text: a time stored
/// with nanoseconds would never equal the microsecond time a page token carries back.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    truncate_time(chrono::Utc::now())
}

/// A time cut to microseconds, as stored.
pub fn truncate_time(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Quotes an identifier for either dialect: wrapped in double quotes, inner quotes doubled.
/// Callers still validate identifiers users type; quoting is the second guard.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A UUID as both dialects store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(pub Uuid);

impl Id {
    /// A new time-ordered id (UUID v7).
    pub fn new() -> Self {
        Id(Uuid::now_v7())
    }
}

impl Default for Id {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for Id {
    fn from(id: Uuid) -> Self {
        Id(id)
    }
}

impl From<Id> for Uuid {
    fn from(id: Id) -> Self {
        id.0
    }
}

impl Type<Postgres> for Id {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Id {
    fn encode_by_ref(&self, buf: &mut <Postgres as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Id {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <Uuid as Decode<Postgres>>::decode(value).map(Id)
    }
}

impl Type<Sqlite> for Id {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <uuid::fmt::Hyphenated as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Id {
    fn encode_by_ref(&self, buf: &mut <Sqlite as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <uuid::fmt::Hyphenated as Encode<Sqlite>>::encode_by_ref(&self.0.hyphenated(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Id {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <uuid::fmt::Hyphenated as Decode<Sqlite>>::decode(value).map(|h| Id(h.into_uuid()))
    }
}

/// Typed column reads that work on a row of either dialect, so one function maps a
/// row to a struct for both.
pub trait RowExt {
    fn id(&self, column: &str) -> Result<Uuid, sqlx::Error>;
    fn opt_id(&self, column: &str) -> Result<Option<Uuid>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn boolean(&self, column: &str) -> Result<bool, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn time(&self, column: &str) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error>;
    fn opt_time(&self, column: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error>;
    fn json(&self, column: &str) -> Result<serde_json::Value, sqlx::Error>;
    /// A JSON column that may be NULL: `Value::Null` then.
    fn opt_json(&self, column: &str) -> Result<serde_json::Value, sqlx::Error>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn id(&self, column: &str) -> Result<Uuid, sqlx::Error> {
                sqlx::Row::try_get::<Id, _>(self, column).map(|id| id.0)
            }
            fn opt_id(&self, column: &str) -> Result<Option<Uuid>, sqlx::Error> {
                sqlx::Row::try_get::<Option<Id>, _>(self, column).map(|id| id.map(|id| id.0))
            }
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn boolean(&self, column: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                // INTEGER columns are 4 bytes on PostgreSQL, 8 on SQLite.
                sqlx::Row::try_get::<i64, _>(self, column)
                    .or_else(|_| sqlx::Row::try_get::<i32, _>(self, column).map(i64::from))
            }
            fn time(&self, column: &str) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_time(&self, column: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn json(&self, column: &str) -> Result<serde_json::Value, sqlx::Error> {
                sqlx::Row::try_get::<sqlx::types::Json<serde_json::Value>, _>(self, column).map(|j| j.0)
            }
            fn opt_json(&self, column: &str) -> Result<serde_json::Value, sqlx::Error> {
                sqlx::Row::try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(self, column)
                    .map(|j| j.map(|j| j.0).unwrap_or_default())
            }
        }
    };
}

impl_row_ext!(sqlx::postgres::PgRow);
impl_row_ext!(sqlx::sqlite::SqliteRow);

/// Whether an error is a unique-constraint violation, in either dialect.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether DDL failed because a table or index of that name is there already:
/// PostgreSQL's `duplicate_table` (42P07), SQLite's generic error with its "already
/// exists" message (SQLite has no code of its own for it).
pub fn is_duplicate_table(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
            Some(_) => db.code().as_deref() == Some("1") && db.message().ends_with("already exists"),
            None => db.code().as_deref() == Some("42P07"),
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://kiln:s3cret@db:5432/kiln"), "postgres://kiln:***@db:5432/kiln");
        assert_eq!(redact_url("redis://:s3cret@redis:6379"), "redis://:***@redis:6379");
        assert_eq!(redact_url("amqp://u:p@q@h/%2f"), "amqp://u:***@h/%2f");
        assert_eq!(redact_url("postgres://kiln@db/kiln"), "postgres://kiln@db/kiln");
        assert_eq!(redact_url("sqlite://./data/kiln.db"), "sqlite://./data/kiln.db");
    }
}
