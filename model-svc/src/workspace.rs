//! Where each workspace's entity tables live: on PostgreSQL a schema `ws_<id>` in the
//! platform database; on SQLite a database file per workspace beside the platform file
//! (`<dir>/workspaces/<id>.db`), opened on first use and kept open.

use std::{collections::HashMap, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use kiln_common::Db;
use sqlx::{
    PgPool, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{
    names::Ident,
    schema::{Dialect, Namespace},
};

/// A connection pool holding one workspace's tables.
#[derive(Debug, Clone)]
pub enum WorkspacePool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Debug, Clone)]
pub struct Workspaces {
    db: Db,
    sqlite_dir: Option<PathBuf>,
    pools: Arc<Mutex<HashMap<Uuid, SqlitePool>>>,
}

impl Workspaces {
    pub fn new(db: Db) -> Self {
        let sqlite_dir = match &db {
            Db::Sqlite(pool) => {
                let file = pool.connect_options().get_filename().to_path_buf();
                Some(file.parent().map(|p| p.join("workspaces")).unwrap_or_else(|| PathBuf::from("workspaces")))
            }
            Db::Postgres(_) => None,
        };
        Workspaces { db, sqlite_dir, pools: Arc::default() }
    }

    pub fn platform(&self) -> &Db {
        &self.db
    }

    /// The platform pool when workspaces are SQLite files: metadata changes are written
    /// there, beside (not inside) the workspace file's transaction.
    pub fn sqlite_platform(&self) -> anyhow::Result<&SqlitePool> {
        match &self.db {
            Db::Sqlite(pool) => Ok(pool),
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

    /// The pool holding the workspace's tables, opening (and creating) its file on SQLite.
    pub async fn pool(&self, workspace_id: Uuid) -> anyhow::Result<WorkspacePool> {
        let (Db::Sqlite(_), Some(dir)) = (&self.db, &self.sqlite_dir) else {
            let Db::Postgres(pool) = &self.db else {
                anyhow::bail!("SQLite without a file has no workspace directory")
            };
            return Ok(WorkspacePool::Postgres(pool.clone()));
        };
        let mut pools = self.pools.lock().await;
        if let Some(pool) = pools.get(&workspace_id) {
            return Ok(WorkspacePool::Sqlite(pool.clone()));
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.db", workspace_id.hyphenated()));
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening workspace database {}", path.display()))?;
        pools.insert(workspace_id, pool.clone());
        Ok(WorkspacePool::Sqlite(pool))
    }

    /// The SQLite file of a workspace, for tools and tests.
    pub fn sqlite_file(&self, workspace_id: Uuid) -> Option<PathBuf> {
        self.sqlite_dir.as_ref().map(|dir| dir.join(format!("{}.db", workspace_id.hyphenated())))
    }

    pub async fn close(&self) {
        for pool in self.pools.lock().await.values() {
            pool.close().await;
        }
    }
}
