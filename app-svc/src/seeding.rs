//! The starter content of every workspace that app-svc owns: the starter workflows
//! (`seeds/workflows.yaml`) and template sets (`seeds/templates/`). Seeded at
//! registration and, at start-up, into every workspace seeded with an older version.
//! Each item is seeded once, remembered by key (`seed_items`), so one the user changed or
//! deleted is left as the user left it. A seeded item nobody has changed since (its
//! `updated_at` is still the moment it was seeded) follows newer seeds: it takes their
//! content, or goes when the seeds no longer have it; otherwise a workspace made before a
//! change of the starter templates would keep building from a mix of old and new files.
//! The system models are model-svc's to seed.

use anyhow::Context;
use kiln_common::{
    db::{Db, Id},
    seeds, with_db,
};
use sqlx::Connection as _;
use std::collections::HashSet;
use uuid::Uuid;

/// What seeding changed in a workspace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Starter items the workspace never had.
    pub added: usize,
    /// Seeded items nobody had changed, brought to the current seeds' content.
    pub upgraded: usize,
    /// Seeded items nobody had changed that the current seeds no longer have.
    pub removed: usize,
}

impl Seeded {
    /// Whether seeding changed anything.
    pub fn changed(&self) -> bool {
        *self != Seeded::default()
    }
}

/// Where the seeded items of a kind are: their table, and the column expression that
/// named such an item before items were remembered by row (`seed_items.item_id` is NULL
/// in workspaces seeded then).
type ItemTable = (&'static str, &'static str);
const WORKFLOWS: ItemTable = ("workflows", "t.name");
const TEMPLATES: ItemTable = ("templates", "t.\"set\" || '/' || t.name");

/// The table of the items a seed key names (`workflow:<key>`, `template:<set>/<key>`).
fn table_of(key: &str) -> Option<ItemTable> {
    if key.starts_with("workflow:") {
        Some(WORKFLOWS)
    } else if key.starts_with("template:") {
        Some(TEMPLATES)
    } else {
        None
    }
}

/// Adds to a workspace the starter items it has never had, and brings the seeded items
/// nobody changed up to the current seeds.
pub async fn seed_workspace(db: &Db, workspace_id: Uuid) -> anyhow::Result<Seeded> {
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
    // Which row the item became (so it can be found by its key), as of when.
    macro_rules! remember {
        ($tx:expr, $key:expr, $id:expr) => {
            sqlx::query("UPDATE seed_items SET item_id = $3, seeded_at = $4 WHERE workspace_id = $1 AND item_key = $2")
                .bind(Id(workspace_id))
                .bind($key)
                .bind($id)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
        };
    }
    // The row a seeded item became, if nobody has changed it since it was seeded.
    // `$legacy_name` finds it in a workspace seeded before rows were remembered.
    macro_rules! untouched {
        ($tx:expr, $table:expr, $key:expr, $legacy_name:expr) => {{
            let (table, legacy_column): ItemTable = $table;
            let sql = format!(
                "SELECT t.id FROM seed_items s JOIN {table} t ON t.workspace_id = s.workspace_id \
                 AND t.created_by IS NULL AND t.updated_at = s.seeded_at \
                 WHERE s.workspace_id = $1 AND s.item_key = $2 \
                 AND (t.id = s.item_id OR (s.item_id IS NULL AND {legacy_column} = $3)) LIMIT 1"
            );
            // Table and column come from the constants above, never from input.
            let id: Option<Id> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(Id(workspace_id))
                .bind($key)
                .bind($legacy_name)
                .fetch_optional(&mut *$tx)
                .await?;
            id
        }};
    }
    let mut current: HashSet<String> = HashSet::new();
    let seeded = with_db!(db, pool => async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin_with(db.begin_write()).await?;
        let mut seeded = Seeded::default();
        for workflow in workflows {
            let key = format!("workflow:{}", workflow.key);
            if claim!(tx, &key) {
                let id = Id::new();
                remember!(tx, &key, id);
                sqlx::query(
                    "INSERT INTO workflows (id, workspace_id, created_at, updated_at, created_by, name, description, \
                     \"trigger\", actions, enabled) VALUES ($1, $2, $3, $3, NULL, $4, $5, $6, $7, $8)",
                )
                .bind(id).bind(Id(workspace_id)).bind(now).bind(&workflow.name).bind(&workflow.description)
                .bind(sqlx::types::Json(&workflow.trigger)).bind(sqlx::types::Json(&workflow.actions)).bind(workflow.enabled)
                .execute(&mut *tx).await?;
                seeded.added += 1;
            } else if let Some(id) = untouched!(tx, WORKFLOWS, &key, Some(workflow.name.as_str())) {
                let changed = sqlx::query(
                    "UPDATE workflows SET name = $2, description = $3, \"trigger\" = $4, actions = $5, enabled = $6, \
                     updated_at = $7 WHERE id = $1 AND (name IS DISTINCT FROM $2 OR description IS DISTINCT FROM $3 \
                     OR \"trigger\" IS DISTINCT FROM $4 OR actions IS DISTINCT FROM $5 OR enabled IS DISTINCT FROM $6)",
                )
                .bind(id).bind(&workflow.name).bind(&workflow.description).bind(sqlx::types::Json(&workflow.trigger))
                .bind(sqlx::types::Json(&workflow.actions)).bind(workflow.enabled).bind(now)
                .execute(&mut *tx).await?.rows_affected();
                if changed == 1 {
                    remember!(tx, &key, id);
                    seeded.upgraded += 1;
                }
            }
            current.insert(key);
        }
        for template in templates {
            let key = format!("template:{}/{}", template.set, template.key);
            if claim!(tx, &key) {
                let id = Id::new();
                remember!(tx, &key, id);
                sqlx::query(
                    "INSERT INTO templates (id, workspace_id, created_at, updated_at, created_by, \"set\", name, \
                     output_path, body, scope, language) VALUES ($1, $2, $3, $3, NULL, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id).bind(Id(workspace_id)).bind(now).bind(&template.set).bind(&template.name)
                .bind(&template.output_path).bind(&template.body).bind(&template.scope).bind(&template.language)
                .execute(&mut *tx).await?;
                seeded.added += 1;
            } else if let Some(id) = untouched!(tx, TEMPLATES, &key, Some(format!("{}/{}", template.set, template.name))) {
                let changed = sqlx::query(
                    "UPDATE templates SET name = $2, output_path = $3, body = $4, scope = $5, language = $6, \
                     updated_at = $7 WHERE id = $1 AND (name IS DISTINCT FROM $2 OR output_path IS DISTINCT FROM $3 \
                     OR body IS DISTINCT FROM $4 OR scope IS DISTINCT FROM $5 OR language IS DISTINCT FROM $6)",
                )
                .bind(id).bind(&template.name).bind(&template.output_path).bind(&template.body)
                .bind(&template.scope).bind(&template.language).bind(now)
                .execute(&mut *tx).await?.rows_affected();
                if changed == 1 {
                    remember!(tx, &key, id);
                    seeded.upgraded += 1;
                }
            }
            current.insert(key);
        }
        // Seeded items the seeds no longer have go, unless someone changed them. Their
        // key stays claimed, so a later seed with the same key does not bring them back
        // to a workspace that had them.
        let keys: Vec<String> = sqlx::query_scalar("SELECT item_key FROM seed_items WHERE workspace_id = $1")
            .bind(Id(workspace_id)).fetch_all(&mut *tx).await?;
        for key in keys.iter().filter(|key| !current.contains(*key)) {
            let Some(table) = table_of(key) else { continue };
            if let Some(id) = untouched!(tx, table, key, None::<String>) {
                let (table, _) = table;
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE id = $1"))).bind(id).execute(&mut *tx).await?;
                seeded.removed += 1;
            }
        }
        sqlx::query("UPDATE workspaces SET seed_version = $2 WHERE id = $1 AND seed_version < $2")
            .bind(Id(workspace_id)).bind(version)
            .execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<Seeded, sqlx::Error>(seeded)
    }.await)
    .with_context(|| format!("seeding workspace {workspace_id}"))?;
    if seeded.changed() {
        let Seeded { added, upgraded, removed } = seeded;
        tracing::info!(%workspace_id, added, upgraded, removed, version, "seeded workspace");
    }
    Ok(seeded)
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
