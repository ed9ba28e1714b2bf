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
    ServiceError, bind_values,
    db::{Db, Id},
    seeds, with_db,
};
use sqlx::Connection as _;
use uuid::Uuid;

use crate::metadata::{ModelRow, VersionRow};

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
    let now = kiln_common::db::now();
    // Each system model's row (added unless its name is taken) and first version.
    let mut rows = Vec::new();
    for model in seeds::system_models()? {
        let (id, fields) = (Id::new(), serde_json::to_value(&model.fields).context("encoding seed fields")?);
        let first_version = VersionRow {
            model_id: id,
            version: 1,
            fields: fields.clone(),
            author: None,
            summary: "seeded".into(),
            created_at: now,
        };
        let mut row = ModelRow {
            id,
            workspace_id: Id(workspace),
            name: model.name.clone(),
            singular: model.name.to_lowercase(),
            plural: model.plural.clone(),
            slug: model.name.to_lowercase(),
            label: model.label.clone(),
            label_plural: model.label_plural.clone(),
            description: model.description.clone(),
            title_field: model.title_field.clone(),
            is_system: true,
            version: 1,
            fields,
            table_name: model.table.clone(),
            created_at: now,
            updated_at: now,
            reserved_fields: serde_json::json!([]),
        }
        .insert();
        row.sql.push_str(" ON CONFLICT DO NOTHING");
        rows.push((model.plural.as_str(), row, first_version.insert()));
    }
    let added = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin_with(db.begin_write()).await?;
        let seeded: Option<i32> = sqlx::query_scalar("SELECT version FROM model_seeds WHERE workspace_id = $1")
            .bind(Id(workspace)).fetch_optional(&mut *tx).await?;
        if seeded.is_some_and(|seeded| seeded >= version) {
            return Ok(0);
        }
        let mut added = 0;
        for (plural, row, first_version) in &rows {
            let inserted = bind_values!(sqlx::query(sqlx::AssertSqlSafe(row.sql.clone())), &row.values)
                .execute(&mut *tx).await?.rows_affected();
            if inserted == 0 {
                // The plural or the slug is taken: by this system model, or by a user model
                // made before this version of the seeds. Either way, the user's stays.
                tracing::debug!(%workspace, model = %plural, "system model not added: its name is taken");
                continue;
            }
            bind_values!(sqlx::query(sqlx::AssertSqlSafe(first_version.sql.clone())), &first_version.values)
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
