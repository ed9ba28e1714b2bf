//! Where each workspace's entity tables live: on PostgreSQL a schema `ws_<id>` in the
//! platform database; on SQLite a database file per workspace beside the platform file
//! (`<dir>/workspaces/<id>.db`), opened on first use (a writer and readers, see
//! [`SqlitePools`]). At most [`MAX_OPEN`] files stay open, the least recently used going
//! first, and a file unused for [`IDLE`] is closed.
//!
//! Also each workspace's schema lock: a change to a model's table holds it exclusively
//! while it applies and while the cached models are forgotten; calls that read or write
//! records hold it shared, so none runs against a table whose change is half seen.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use kiln_common::{Db, db::SqlitePools};
use tokio::sync::{Mutex, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};
use uuid::Uuid;

use kiln_common::records::{engine::RecordPool, fields::Dialect, names::Ident};

use crate::schema::Namespace;

/// SQLite workspace files open at once, at most.
pub const MAX_OPEN: usize = 256;
/// How long an unused SQLite workspace file stays open.
pub const IDLE: Duration = Duration::from_secs(600);
/// Read-only connections per open SQLite workspace file.
const READERS: u32 = 4;

/// The directory of the workspaces' SQLite files, beside the platform file.
pub fn workspace_dir(platform_file: &Path) -> PathBuf {
    platform_file.parent().map(|p| p.join("workspaces")).unwrap_or_else(|| PathBuf::from("workspaces"))
}

/// Where a workspace's SQLite file lives in the workspace directory `dir`.
fn workspace_file(dir: &Path, workspace_id: Uuid) -> PathBuf {
    dir.join(format!("{}.db", workspace_id.hyphenated()))
}

#[derive(Debug)]
struct Open {
    pools: SqlitePools,
    last_used: Instant,
}

#[derive(Debug, Clone)]
pub struct Workspaces {
    db: Db,
    sqlite_dir: Option<PathBuf>,
    open: Arc<Mutex<HashMap<Uuid, Open>>>,
    max_open: usize,
    schema_locks: Arc<std::sync::Mutex<HashMap<Uuid, Weak<RwLock<()>>>>>,
}

impl Workspaces {
    pub fn new(db: Db) -> Self {
        Self::with_limits(db, MAX_OPEN, IDLE)
    }

    /// At most `max_open` SQLite files open, each closed after `idle` unused.
    pub fn with_limits(db: Db, max_open: usize, idle: Duration) -> Self {
        let sqlite_dir = match &db {
            Db::Sqlite(pools) => Some(workspace_dir(&pools.path())),
            Db::Postgres(_) => None,
        };
        let workspaces = Workspaces {
            db,
            sqlite_dir,
            open: Arc::default(),
            max_open: max_open.max(1),
            schema_locks: Arc::default(),
        };
        if workspaces.sqlite_dir.is_some() {
            tokio::spawn(close_idle(Arc::downgrade(&workspaces.open), idle));
        }
        workspaces
    }

    pub fn platform(&self) -> &Db {
        &self.db
    }

    /// The platform pools when workspaces are SQLite files: metadata changes are written
    /// there, beside (not inside) the workspace file's transaction.
    pub fn sqlite_platform(&self) -> anyhow::Result<&SqlitePools> {
        match &self.db {
            Db::Sqlite(pools) => Ok(pools),
            Db::Postgres(_) => anyhow::bail!("SQLite workspace on a non-SQLite platform database"),
        }
    }

    pub fn namespace(&self, workspace_id: Uuid) -> Namespace {
        match self.db {
            Db::Postgres(_) => {
                Namespace { dialect: Dialect::Postgres, schema: Some(Ident::workspace_schema(workspace_id)) }
            }
            Db::Sqlite(_) => Namespace { dialect: Dialect::Sqlite, schema: None },
        }
    }

    /// The connections to the workspace's tables, opening (and creating) its file on SQLite.
    pub async fn pool(&self, workspace_id: Uuid) -> anyhow::Result<RecordPool> {
        let (Db::Sqlite(platform), Some(dir)) = (&self.db, &self.sqlite_dir) else {
            let Db::Postgres(pool) = &self.db else {
                anyhow::bail!("SQLite without a file has no workspace directory")
            };
            return Ok(RecordPool::Postgres(pool.clone()));
        };
        let mut open = self.open.lock().await;
        if let Some(entry) = open.get_mut(&workspace_id) {
            entry.last_used = Instant::now();
            return Ok(RecordPool::Sqlite(entry.pools.clone()));
        }
        if open.len() >= self.max_open
            && let Some(oldest) = open.iter().min_by_key(|(_, e)| e.last_used).map(|(id, _)| *id)
        {
            // Calls still holding its pools finish; the pools close when the last goes.
            open.remove(&oldest);
        }
        let pools = SqlitePools::open(&workspace_file(dir, workspace_id), READERS, platform.read_timeout).await?;
        open.insert(workspace_id, Open { pools: pools.clone(), last_used: Instant::now() });
        Ok(RecordPool::Sqlite(pools))
    }

    /// How many SQLite workspace files are open.
    pub async fn open_files(&self) -> usize {
        self.open.lock().await.len()
    }

    fn schema_lock(&self, workspace_id: Uuid) -> Arc<RwLock<()>> {
        let mut locks = self.schema_locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lock) = locks.get(&workspace_id).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() >= 1024 {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(RwLock::new(()));
        locks.insert(workspace_id, Arc::downgrade(&lock));
        lock
    }

    /// Held while a call reads or writes the workspace's records.
    pub async fn schema_shared(&self, workspace_id: Uuid) -> OwnedRwLockReadGuard<()> {
        self.schema_lock(workspace_id).read_owned().await
    }

    /// Held while a model of the workspace is created, changed or deleted.
    pub async fn schema_exclusive(&self, workspace_id: Uuid) -> OwnedRwLockWriteGuard<()> {
        self.schema_lock(workspace_id).write_owned().await
    }

    pub async fn close(&self) {
        for (_, entry) in self.open.lock().await.drain() {
            entry.pools.close().await;
        }
    }
}

/// Closes workspace files unused for `idle`, until the workspaces are dropped.
async fn close_idle(open: Weak<Mutex<HashMap<Uuid, Open>>>, idle: Duration) {
    let mut tick = tokio::time::interval(idle / 10);
    loop {
        tick.tick().await;
        let Some(open) = open.upgrade() else { return };
        open.lock().await.retain(|_, entry| entry.last_used.elapsed() < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_files_are_bounded_and_idle_ones_close() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kiln.db").display());
        let db = Db::connect(&url, Default::default()).await.unwrap();
        let workspaces = Workspaces::with_limits(db, 2, Duration::from_millis(200));
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for id in &ids {
            workspaces.pool(*id).await.unwrap();
        }
        assert_eq!(workspaces.open_files().await, 2, "the least recently used file was closed");
        let dir = workspaces.sqlite_dir.as_deref().unwrap();
        assert!(workspace_file(dir, ids[0]).exists(), "closing a file keeps it");
        // Reopened on use.
        workspaces.pool(ids[0]).await.unwrap();
        assert_eq!(workspaces.open_files().await, 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        while workspaces.open_files().await > 0 {
            assert!(Instant::now() < deadline, "idle files were not closed");
            tokio::task::yield_now().await;
        }
    }
}
