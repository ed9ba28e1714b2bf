//! Workspace seeding from `seeds/*.yaml`, compiled in: the system models every workspace
//! starts with. Seeding is idempotent (what exists is left alone, user edits included)
//! and versioned: a workspace records the seed version it has, and workspaces behind the
//! current one get what is missing at start-up.

use std::sync::LazyLock;

use anyhow::Context;
use chrono::Utc;
use kiln_proto::v1::Field;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    db::{Db, Id},
    with_db,
};

const MODELS_YAML: &str = include_str!("../../seeds/models.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    version: i32,
    models: Vec<SeedModel>,
}

/// A system model as the seed file describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedModel {
    pub name: String,
    pub plural: String,
    /// The platform table holding its records.
    pub table: String,
    pub label: String,
    pub label_plural: String,
    pub title_field: String,
    pub description: String,
    pub fields: Vec<Field>,
}

struct Seeds {
    version: i32,
    models: Vec<SeedModel>,
}

static SEEDS: LazyLock<Result<Seeds, String>> = LazyLock::new(|| {
    let file: SeedFile = yaml_serde::from_str(MODELS_YAML).map_err(|e| format!("seeds/models.yaml: {e}"))?;
    Ok(Seeds { version: file.version, models: file.models })
});

fn seeds() -> anyhow::Result<&'static Seeds> {
    SEEDS.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The version of the compiled-in seeds.
pub fn current_version() -> anyhow::Result<i32> {
    Ok(seeds()?.version)
}

/// The system models of the compiled-in seeds.
pub fn system_models() -> anyhow::Result<&'static [SeedModel]> {
    Ok(&seeds()?.models)
}

/// Adds to a workspace whatever of the seeds it lacks; returns how many models were added.
pub async fn seed_workspace(db: &Db, workspace_id: Uuid) -> anyhow::Result<usize> {
    let seeds = seeds()?;
    let now = Utc::now();
    let mut rows = Vec::with_capacity(seeds.models.len());
    for model in &seeds.models {
        let fields = serde_json::to_value(&model.fields).context("encoding seed fields")?;
        rows.push((model, fields));
    }
    let added = with_db!(db, pool => async {
        let mut tx = pool.begin().await?;
        let mut added = 0;
        for (model, fields) in &rows {
            let id = Id::new();
            let inserted = sqlx::query(
                "INSERT INTO models (id, workspace_id, name, singular, plural, slug, label, label_plural, description, \
                 title_field, is_system, version, fields, table_name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $4, $6, $7, $8, $9, $10, 1, $11, $12, $13, $13) \
                 ON CONFLICT (workspace_id, plural) DO NOTHING",
            )
            .bind(id).bind(Id(workspace_id)).bind(&model.name).bind(model.name.to_lowercase()).bind(&model.plural)
            .bind(&model.label).bind(&model.label_plural).bind(&model.description).bind(&model.title_field)
            .bind(true).bind(sqlx::types::Json(fields)).bind(&model.table).bind(now)
            .execute(&mut *tx).await?.rows_affected();
            if inserted == 1 {
                sqlx::query(
                    "INSERT INTO model_versions (model_id, version, fields, author, summary, created_at) \
                     VALUES ($1, 1, $2, NULL, $3, $4)",
                )
                .bind(id).bind(sqlx::types::Json(fields)).bind("seeded").bind(now)
                .execute(&mut *tx).await?;
                added += 1;
            }
        }
        sqlx::query("UPDATE workspaces SET seed_version = $2 WHERE id = $1 AND seed_version < $2")
            .bind(Id(workspace_id)).bind(seeds.version)
            .execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<usize, sqlx::Error>(added)
    }.await)
    .with_context(|| format!("seeding workspace {workspace_id}"))?;
    if added > 0 {
        tracing::info!(%workspace_id, added, version = seeds.version, "seeded workspace");
    }
    Ok(added)
}

/// Brings every workspace seeded with an older version up to the current one.
pub async fn upgrade_workspaces(db: &Db) -> anyhow::Result<usize> {
    let version = current_version()?;
    let behind: Vec<Id> = with_db!(db, pool => {
        sqlx::query_scalar("SELECT id FROM workspaces WHERE seed_version < $1").bind(version).fetch_all(pool).await
    })
    .context("finding workspaces to seed")?;
    for workspace in &behind {
        seed_workspace(db, workspace.0).await?;
    }
    Ok(behind.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_file_describes_every_system_model_with_valid_fields() {
        let models = system_models().unwrap();
        let plurals: Vec<&str> = models.iter().map(|m| m.plural.as_str()).collect();
        assert_eq!(plurals, ["models", "applications", "users", "components", "templates", "workflows", "prompts"]);
        for model in models {
            assert!(model.fields.iter().any(|f| f.name == model.title_field), "{}: title field", model.name);
            for field in &model.fields {
                assert!(!field.label.is_empty(), "{}.{} has no label", model.name, field.name);
                assert!(!field.r#type.is_empty(), "{}.{} has no type", model.name, field.name);
            }
        }
        assert!(current_version().unwrap() >= 1);
    }
}
