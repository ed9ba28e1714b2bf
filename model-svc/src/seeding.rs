//! The system models every workspace starts with (`seeds/models.yaml`), seeded by
//! model-svc, which owns the models: the first call for a workspace in a process brings
//! it up to the current seed version (kept in `model_seeds`), so a new workspace and one
//! seeded by an older version alike get what they lack, and no other service writes
//! model-svc's tables. Idempotent: what exists is left alone, a user's edits included,
//! and a system model whose name a user model already holds is skipped.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use kiln_common::{
    ServiceError,
    db::{Db, Id},
    seeds, with_db,
};
use sqlx::Connection as _;
use uuid::Uuid;

/// Workspaces remembered as seeded, at most; past that the memory starts afresh (each
/// workspace then costs one more look at `model_seeds`).
const REMEMBERED: usize = 100_000;

/// Which workspaces this process has brought up to the current seeds.
#[derive(Debug, Clone)]
pub struct SystemModels {
    db: Db,
    seeded: Arc<Mutex<HashSet<Uuid>>>,
}

impl SystemModels {
    pub fn new(db: Db) -> Self {
        SystemModels { db, seeded: Arc::default() }
    }

    /// Brings `workspace` up to the current seeds, once per process.
    pub async fn ensure(&self, workspace: Uuid) -> Result<(), ServiceError> {
        if self.remembered().contains(&workspace) {
            return Ok(());
        }
        seed_models(&self.db, workspace).await?;
        let mut seeded = self.remembered();
        if seeded.len() >= REMEMBERED {
            seeded.clear();
        }
        seeded.insert(workspace);
        Ok(())
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        // A panic while holding the lock leaves a set that is still consistent.
        self.seeded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Adds to `workspace` the system models it lacks when its seed version is behind the
/// current one; returns how many were added.
pub async fn seed_models(db: &Db, workspace: Uuid) -> anyhow::Result<usize> {
    let version = seeds::current_version()?;
    let models = seeds::system_models()?;
    let mut rows = Vec::with_capacity(models.len());
    for model in models {
        rows.push((model, serde_json::to_value(&model.fields).context("encoding seed fields")?));
    }
    let now = kiln_common::db::now();
    let added = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let seeded: Option<i32> = sqlx::query_scalar("SELECT version FROM model_seeds WHERE workspace_id = $1")
            .bind(Id(workspace)).fetch_optional(&mut *tx).await?;
        if seeded.is_some_and(|seeded| seeded >= version) {
            return Ok(0);
        }
        let mut added = 0;
        for (model, fields) in &rows {
            let id = Id::new();
            let inserted = sqlx::query(
                "INSERT INTO models (id, workspace_id, name, singular, plural, slug, label, label_plural, description, \
                 title_field, is_system, version, fields, table_name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $4, $6, $7, $8, $9, $10, 1, $11, $12, $13, $13) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id).bind(Id(workspace)).bind(&model.name).bind(model.name.to_lowercase()).bind(&model.plural)
            .bind(&model.label).bind(&model.label_plural).bind(&model.description).bind(&model.title_field)
            .bind(true).bind(sqlx::types::Json(fields)).bind(&model.table).bind(now)
            .execute(&mut *tx).await?.rows_affected();
            if inserted == 0 {
                // The plural or the slug is taken: by this system model, or by a user model
                // made before this version of the seeds. Either way, the user's stays.
                tracing::debug!(%workspace, model = %model.plural, "system model not added: its name is taken");
                continue;
            }
            sqlx::query(
                "INSERT INTO model_versions (model_id, version, fields, author, summary, created_at) \
                 VALUES ($1, 1, $2, NULL, 'seeded', $3)",
            )
            .bind(id).bind(sqlx::types::Json(fields)).bind(now)
            .execute(&mut *tx).await?;
            added += 1;
        }
        sqlx::query(
            "INSERT INTO model_seeds (workspace_id, version) VALUES ($1, $2) \
             ON CONFLICT (workspace_id) DO UPDATE SET version = excluded.version",
        )
        .bind(Id(workspace)).bind(version)
        .execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<usize, sqlx::Error>(added)
    }.await)
    .with_context(|| format!("seeding the system models of workspace {workspace}"))?;
    if added > 0 {
        tracing::info!(%workspace, added, version, "seeded system models");
    }
    Ok(added)
}
