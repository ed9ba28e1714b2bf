//! The starter content of every workspace that app-svc owns: the starter workflows
//! (`seeds/workflows.yaml`) and template sets (`seeds/templates/`). Seeded at
//! registration and, at start-up, into every workspace seeded with an older version.
//! Each item is seeded once, remembered by key (`seed_items`), so one the user changed or
//! deleted is left as the user left it. The system models are model-svc's to seed.

use anyhow::Context;
use kiln_common::{
    db::{Db, Id},
    seeds, with_db,
};
use sqlx::Connection as _;
use uuid::Uuid;

/// Adds to a workspace the starter items it has never had; returns how many were added.
pub async fn seed_workspace(db: &Db, workspace_id: Uuid) -> anyhow::Result<usize> {
    let version = seeds::current_version()?;
    let (workflows, templates) = (seeds::starter_workflows()?, seeds::starter_templates()?);
    let now = kiln_common::db::now();
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
    // Which row the item became, so it can be found by its key.
    macro_rules! remember {
        ($tx:expr, $key:expr, $id:expr) => {
            sqlx::query("UPDATE seed_items SET item_id = $3 WHERE workspace_id = $1 AND item_key = $2")
                .bind(Id(workspace_id))
                .bind($key)
                .bind($id)
                .execute(&mut *$tx)
                .await?;
        };
    }
    let added = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut added = 0;
        for workflow in workflows {
            if claim!(tx, format!("workflow:{}", workflow.key)) {
                let id = Id::new();
                remember!(tx, format!("workflow:{}", workflow.key), id);
                sqlx::query(
                    "INSERT INTO workflows (id, workspace_id, created_at, updated_at, created_by, name, description, \
                     \"trigger\", actions, enabled) VALUES ($1, $2, $3, $3, NULL, $4, $5, $6, $7, $8)",
                )
                .bind(id).bind(Id(workspace_id)).bind(now).bind(&workflow.name).bind(&workflow.description)
                .bind(sqlx::types::Json(&workflow.trigger)).bind(sqlx::types::Json(&workflow.actions)).bind(workflow.enabled)
                .execute(&mut *tx).await?;
                added += 1;
            }
        }
        for template in templates {
            if claim!(tx, format!("template:{}/{}", template.set, template.key)) {
                let id = Id::new();
                remember!(tx, format!("template:{}/{}", template.set, template.key), id);
                sqlx::query(
                    "INSERT INTO templates (id, workspace_id, created_at, updated_at, created_by, \"set\", name, \
                     output_path, body, scope, language) VALUES ($1, $2, $3, $3, NULL, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id).bind(Id(workspace_id)).bind(now).bind(&template.set).bind(&template.name)
                .bind(&template.output_path).bind(&template.body).bind(&template.scope).bind(&template.language)
                .execute(&mut *tx).await?;
                added += 1;
            }
        }
        sqlx::query("UPDATE workspaces SET seed_version = $2 WHERE id = $1 AND seed_version < $2")
            .bind(Id(workspace_id)).bind(version)
            .execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<usize, sqlx::Error>(added)
    }.await)
    .with_context(|| format!("seeding workspace {workspace_id}"))?;
    if added > 0 {
        tracing::info!(%workspace_id, added, version, "seeded workspace");
    }
    Ok(added)
}

/// Brings every workspace seeded with an older version up to the current one; returns
/// how many workspaces were behind.
pub async fn upgrade_workspaces(db: &Db) -> anyhow::Result<usize> {
    let version = seeds::current_version()?;
    let behind: Vec<Id> = with_db!(db, pool => {
        sqlx::query_scalar("SELECT id FROM workspaces WHERE seed_version < $1").bind(version).fetch_all(pool).await
    })
    .context("finding workspaces to seed")?;
    for workspace in &behind {
        seed_workspace(db, workspace.0).await?;
    }
    Ok(behind.len())
}

/// The row a seeded item (`workflow:<key>`, `template:<set>/<key>`) became in a
/// workspace, if it was seeded there.
pub async fn seeded_item(db: &Db, workspace_id: Uuid, key: &str) -> anyhow::Result<Option<Uuid>> {
    let id: Option<Option<Id>> = kiln_common::with_db_read!(db, pool => {
        sqlx::query_scalar("SELECT item_id FROM seed_items WHERE workspace_id = $1 AND item_key = $2")
            .bind(Id(workspace_id)).bind(key).fetch_optional(pool).await
    })
    .context("finding a seeded item")?;
    Ok(id.flatten().map(|id| id.0))
}
