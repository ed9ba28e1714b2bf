//! Workspace seeding from `seeds/`, compiled in: the system models every workspace starts
//! with, the starter workflows and the starter template set. Seeding is idempotent (what
//! exists is left alone, user edits included; a seeded item the user deleted is not
//! brought back) and versioned: a workspace records the seed version it has, and
//! workspaces behind the current one get what is missing at start-up.

use sqlx::Connection as _;
use std::sync::LazyLock;

use anyhow::Context;
use kiln_proto::v1::Field;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    db::{Db, Id},
    with_db,
};

const MODELS_YAML: &str = include_str!("../../seeds/models.yaml");
const WORKFLOWS_YAML: &str = include_str!("../../seeds/workflows.yaml");
const TEMPLATE_SETS: &[(&str, &str)] = &[("rust-axum", include_str!("../../seeds/templates/rust-axum.yaml"))];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    workflows: Vec<SeedWorkflow>,
}

/// A starter workflow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedWorkflow {
    pub key: String,
    pub name: String,
    pub description: String,
    pub trigger: serde_json::Value,
    pub actions: serde_json::Value,
    pub enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    set: String,
    templates: Vec<SeedTemplate>,
}

/// A starter template of a set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTemplate {
    pub key: String,
    #[serde(skip)]
    pub set: String,
    pub name: String,
    pub output_path: String,
    pub scope: String,
    pub language: String,
    pub body: String,
}

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
    workflows: Vec<SeedWorkflow>,
    templates: Vec<SeedTemplate>,
}

static SEEDS: LazyLock<Result<Seeds, String>> = LazyLock::new(|| {
    let file: SeedFile = yaml_serde::from_str(MODELS_YAML).map_err(|e| format!("seeds/models.yaml: {e}"))?;
    let workflows: WorkflowFile =
        yaml_serde::from_str(WORKFLOWS_YAML).map_err(|e| format!("seeds/workflows.yaml: {e}"))?;
    let mut templates = Vec::new();
    for (name, text) in TEMPLATE_SETS {
        let set: TemplateFile = yaml_serde::from_str(text).map_err(|e| format!("seeds/templates/{name}.yaml: {e}"))?;
        templates.extend(set.templates.into_iter().map(|t| SeedTemplate { set: set.set.clone(), ..t }));
    }
    Ok(Seeds { version: file.version, models: file.models, workflows: workflows.workflows, templates })
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

/// The starter workflows.
pub fn starter_workflows() -> anyhow::Result<&'static [SeedWorkflow]> {
    Ok(&seeds()?.workflows)
}

/// The starter templates of every set.
pub fn starter_templates() -> anyhow::Result<&'static [SeedTemplate]> {
    Ok(&seeds()?.templates)
}

/// Adds to a workspace whatever of the seeds it lacks; returns how many items were added.
pub async fn seed_workspace(db: &Db, workspace_id: Uuid) -> anyhow::Result<usize> {
    let seeds = seeds()?;
    let now = crate::db::now();
    let mut rows = Vec::with_capacity(seeds.models.len());
    for model in &seeds.models {
        let fields = serde_json::to_value(&model.fields).context("encoding seed fields")?;
        rows.push((model, fields));
    }
    // Records that the workspace received an item; false when it already had.
    macro_rules! claim {
        ($tx:expr, $key:expr) => {
            sqlx::query(
                "INSERT INTO seed_items (workspace_id, item_key, seeded_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(Id(workspace_id))
            .bind($key)
            .bind(now)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
                == 1
        };
    }
    let added = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut added = 0;
        for (model, fields) in &rows {
            let id = Id::new();
            let inserted = sqlx::query(
                "INSERT INTO models (id, workspace_id, name, singular, plural, slug, label, label_plural, description, \
                 title_field, is_system, version, fields, table_name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $4, $6, $7, $8, $9, $10, 1, $11, $12, $13, $13) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id).bind(Id(workspace_id)).bind(&model.name).bind(model.name.to_lowercase()).bind(&model.plural)
            .bind(&model.label).bind(&model.label_plural).bind(&model.description).bind(&model.title_field)
            .bind(true).bind(sqlx::types::Json(fields)).bind(&model.table).bind(now)
            .execute(&mut *tx).await?.rows_affected();
            if inserted == 0 {
                // The plural or the slug is taken: by this system model, or by a user model
                // made before this version of the seeds. Either way, the user's stays.
                tracing::debug!(%workspace_id, model = %model.plural, "system model not added: its name is taken");
            } else {
                sqlx::query(
                    "INSERT INTO model_versions (model_id, version, fields, author, summary, created_at) \
                     VALUES ($1, 1, $2, NULL, $3, $4)",
                )
                .bind(id).bind(sqlx::types::Json(fields)).bind("seeded").bind(now)
                .execute(&mut *tx).await?;
                added += 1;
            }
        }
        // Workflows and templates are seeded once each, remembered by key.
        for workflow in &seeds.workflows {
            if claim!(tx, format!("workflow:{}", workflow.key)) {
                sqlx::query(
                    "INSERT INTO workflows (id, workspace_id, created_at, updated_at, created_by, name, description, \
                     \"trigger\", actions, enabled) VALUES ($1, $2, $3, $3, NULL, $4, $5, $6, $7, $8)",
                )
                .bind(Id::new()).bind(Id(workspace_id)).bind(now).bind(&workflow.name).bind(&workflow.description)
                .bind(sqlx::types::Json(&workflow.trigger)).bind(sqlx::types::Json(&workflow.actions)).bind(workflow.enabled)
                .execute(&mut *tx).await?;
                added += 1;
            }
        }
        for template in &seeds.templates {
            let key = format!("template:{}/{}", template.set, template.key);
            if claim!(tx, key) {
                sqlx::query(
                    "INSERT INTO templates (id, workspace_id, created_at, updated_at, created_by, \"set\", name, \
                     output_path, body, scope, language) VALUES ($1, $2, $3, $3, NULL, $4, $5, $6, $7, $8, $9)",
                )
                .bind(Id::new()).bind(Id(workspace_id)).bind(now).bind(&template.set).bind(&template.name)
                .bind(&template.output_path).bind(&template.body).bind(&template.scope).bind(&template.language)
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

    #[test]
    fn the_starter_content_is_complete() {
        let build = starter_workflows().unwrap().iter().find(|w| w.key == "build-application").unwrap();
        assert_eq!(build.name, "Export/Build Application");
        assert_eq!(build.actions[0]["kind"], "publish_event");
        assert_eq!(build.actions[0]["config"]["queue"], "app_builds");
        let templates = starter_templates().unwrap();
        assert!(templates.iter().all(|t| t.set == "rust-axum" && ["once", "per_model"].contains(&t.scope.as_str())));
        let paths: Vec<&str> = templates.iter().map(|t| t.output_path.as_str()).collect();
        assert!(paths.contains(&"Cargo.toml") && paths.contains(&"Dockerfile") && paths.contains(&"src/main.rs"));
        let mut keys: Vec<&str> = templates.iter().map(|t| t.key.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), templates.len(), "template keys are unique");
    }
}
