//! Changing and deleting user models: a change is planned as a diff (keep, rename, add,
//! drop), shown by PlanModelChange, and applied by UpdateModel as a new model version in
//! one transaction per database. Dropping columns or tables needs `confirm_data_loss`.
//! PostgreSQL alters the table in place; SQLite rebuilds it (create, copy, swap), the
//! way SQLite documents for changes ALTER TABLE cannot make.

use kiln_common::{
    Principal, ServiceError,
    db::{Id, RowExt},
    error::FieldViolation,
    paging::Paging,
    timestamp, with_db,
};
use kiln_proto::v1::{
    DeleteModelRequest, DeleteModelResponse, Field, ListModelVersionsRequest, ListModelVersionsResponse, Model,
    ModelVersion, PlanModelChangeRequest, PlanModelChangeResponse, UpdateModelRequest, UpdateModelResponse,
};
use sqlx::Connection;

use crate::{
    bind_values,
    models::{ModelApi, find_model, text_rule},
    names::{self, Ident},
    records::{SqlValue, check_value},
    schema::{self, Constraint, FieldSpec, Namespace, Plan, Step},
    workspace::WorkspacePool,
};

impl ModelApi {
    /// A user model of the caller's workspace with its parsed fields.
    async fn user_model(
        &self,
        principal: Principal,
        key: &str,
        doing: &str,
    ) -> Result<(Model, Vec<FieldSpec>), ServiceError> {
        let model = find_model(&self.deps.db, principal.workspace_id, key.trim())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no model `{}` in this workspace", key.trim())))?;
        if model.is_system {
            return Err(ServiceError::FailedPrecondition(format!("system models cannot be {doing}")));
        }
        let specs = schema::parse_fields(&model.fields)
            .map_err(|v| anyhow::anyhow!("stored fields of {} no longer parse: {v:?}", model.plural))?;
        Ok((model, specs))
    }

    pub(crate) async fn plan_change(
        &self,
        principal: Principal,
        req: PlanModelChangeRequest,
    ) -> Result<PlanModelChangeResponse, ServiceError> {
        let (_, old) = self.user_model(principal, &req.id, "changed").await?;
        let new = schema::parse_fields(&req.fields).map_err(ServiceError::invalid)?;
        let plan = schema::plan(&old, &new, &req.fields).map_err(ServiceError::invalid)?;
        Ok(PlanModelChangeResponse { changes: plan.describe(&old, &new), destructive: plan.is_destructive() })
    }

    pub(crate) async fn update(
        &self,
        principal: Principal,
        req: UpdateModelRequest,
    ) -> Result<UpdateModelResponse, ServiceError> {
        // Exclusive from the read of the model to the forgetting of its compiled form.
        let _exclusive = self.workspaces.schema_exclusive(principal.workspace_id).await;
        let (model, old) = self.user_model(principal, &req.id, "changed").await?;
        let mut violations = Vec::new();
        let new = schema::parse_fields(&req.fields).map_err(|v| violations.extend(v)).ok();
        let label = req.label.as_deref().map(|l| text_rule(&mut violations, "label", l, 100));
        let label_plural = req.label_plural.as_deref().map(|l| text_rule(&mut violations, "label_plural", l, 100));
        let description = req.description.as_deref().map(|d| text_rule(&mut violations, "description", d, 2000));
        let summary = text_rule(&mut violations, "summary", &req.summary, 500);
        violations.extend(self.missing_relation_targets(principal, &req.fields).await);
        let plan = match &new {
            Some(new) => schema::plan(&old, new, &req.fields).map_err(|v| violations.extend(v)).ok(),
            None => None,
        };
        let (Some(new), Some(plan), true) = (new, plan, violations.is_empty()) else {
            return Err(ServiceError::invalid(violations));
        };
        let title_field = match req.title_field.as_deref().map(str::trim) {
            Some(title) if !title.is_empty() => {
                let title = names::normalise(title).unwrap_or_default();
                if !new.iter().any(|s| s.name.as_str() == title) {
                    return Err(ServiceError::invalid_field("title_field", "must be the name of one of the fields"));
                }
                title
            }
            // Keep the title field while it exists; otherwise fall back as on creation.
            _ if new.iter().any(|s| s.name.as_str() == model.title_field) => model.title_field.clone(),
            _ => new
                .iter()
                .find(|s| s.ty == schema::FieldType::Text)
                .map(|s| s.name.to_string())
                .unwrap_or_else(|| "id".into()),
        };
        let dropped: Vec<FieldViolation> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Drop { old: o } => {
                    Some(FieldViolation::new(old[*o].name.as_str(), "column and every value in it"))
                }
                _ => None,
            })
            .collect();
        if !dropped.is_empty() && !req.confirm_data_loss {
            let names: Vec<&str> = dropped.iter().map(|d| d.field.as_str()).collect();
            return Err(ServiceError::WouldLoseData {
                message: format!("removing {} drops the data in it; send confirm_data_loss to apply", names.join(", ")),
                losses: dropped,
            });
        }
        let plural = names::plural_ref(&model.plural).map_err(|e| anyhow::anyhow!("stored plural: {e}"))?;
        let table = Ident::table_of(&plural);
        let ns = self.workspaces.namespace(principal.workspace_id);
        let pool = self.workspaces.pool(principal.workspace_id).await?;

        // A required field added to a table with records needs a value for them.
        let mut backfill = Vec::new();
        for step in &plan.steps {
            let Step::Add { new: n } = *step else { continue };
            let spec = &new[n];
            match &spec.field.default_value {
                Some(default) => {
                    let value = serde_json::to_value(default).unwrap_or_default();
                    let value = check_value(spec, &value)
                        .map_err(|why| ServiceError::invalid_field(format!("fields[{n}].default_value"), why))?;
                    backfill.push((n, Some(value)));
                }
                None if spec.required && has_rows(&pool, &ns.table(&table)).await? => {
                    return Err(ServiceError::invalid_field(
                        format!("fields[{n}]"),
                        "a required field added to a model with records needs a default_value",
                    ));
                }
                None => backfill.push((n, None)),
            }
        }

        let fields: Vec<Field> = new.iter().map(|s| s.field.clone()).collect();
        let fields_json = serde_json::to_value(&fields).map_err(|e| anyhow::anyhow!("encoding fields: {e}"))?;
        let now = kiln_common::db::now();
        let model_id = Id(uuid::Uuid::parse_str(&model.id).map_err(|e| anyhow::anyhow!("stored model id: {e}"))?);
        let version = model.version + 1;
        let changes = plan.describe(&old, &new);
        let summary = if summary.is_empty() {
            changes.iter().map(|c| c.description.clone()).collect::<Vec<_>>().join("; ")
        } else {
            summary
        };
        let summary = if summary.is_empty() { "labels changed".to_string() } else { summary };
        macro_rules! write_metadata {
            ($tx:expr) => {{
                let updated = sqlx::query(
                    "UPDATE models SET label = COALESCE($2, label), label_plural = COALESCE($3, label_plural), \
                     description = COALESCE($4, description), title_field = $5, fields = $6, version = $7, \
                     updated_at = $8 WHERE id = $1 AND version = $9",
                )
                .bind(model_id)
                .bind(&label)
                .bind(&label_plural)
                .bind(&description)
                .bind(&title_field)
                .bind(sqlx::types::Json(&fields_json))
                .bind(version)
                .bind(now)
                .bind(model.version)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    // Someone else changed the model since it was read.
                    return Err(sqlx::Error::RowNotFound);
                }
                sqlx::query(
                    "INSERT INTO model_versions (model_id, version, fields, author, summary, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(model_id)
                .bind(version)
                .bind(sqlx::types::Json(&fields_json))
                .bind(Id(principal.user_id))
                .bind(&summary)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
            }};
        }
        let applied: Result<(), sqlx::Error> = match &pool {
            WorkspacePool::Postgres(pool) => {
                async {
                    let mut conn = pool.acquire().await?;
                    let mut tx = conn.begin().await?;
                    write_metadata!(tx);
                    for statement in alter_statements(&ns, &table, &plan, &old, &new) {
                        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
                    }
                    for (n, value) in &backfill {
                        let spec = &new[*n];
                        let column = spec.name.quoted();
                        if let Some(value) = value {
                            let sql = format!("UPDATE {} SET {column} = $1", ns.table(&table));
                            bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), [value]).execute(&mut *tx).await?;
                        }
                        if spec.required {
                            let sql = format!("ALTER TABLE {} ALTER COLUMN {column} SET NOT NULL", ns.table(&table));
                            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await
                }
                .await
            }
            // Two files. The table is rebuilt in a transaction of the workspace file, left
            // open while the metadata commits in a short platform transaction (the platform
            // writer is not held across the copy), then committed. A failure before the
            // metadata commits leaves both as they were.
            WorkspacePool::Sqlite(ws) => {
                let platform = &self.workspaces.sqlite_platform()?.writer;
                let mut conn = ws.writer.acquire().await?;
                // Foreign keys cannot be switched inside a transaction; the rebuild's
                // foreign_key_check stands in.
                sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
                let applied = async {
                    let mut tx = conn.begin().await?;
                    rebuild_sqlite_table(&mut tx, &ns, &table, &plan, &old, &new, &backfill).await?;
                    let mut meta_conn = platform.acquire().await?;
                    let mut meta = meta_conn.begin().await?;
                    write_metadata!(meta);
                    meta.commit().await?;
                    if let Err(e) = tx.commit().await {
                        tracing::error!(error = %e, model = %plural, "model version saved but its table change failed to commit");
                        return Err(e);
                    }
                    Ok(())
                }
                .await;
                // A connection whose foreign keys might still be off never goes back to the pool.
                let restored = sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await;
                if restored.is_err() {
                    conn.close_on_drop();
                }
                applied.and(restored.map(|_| ()))
            }
        };
        self.catalog.forget(principal.workspace_id);
        match applied {
            Ok(()) => {}
            Err(sqlx::Error::RowNotFound) => {
                return Err(ServiceError::FailedPrecondition(
                    "the model was changed meanwhile; reload and retry".into(),
                ));
            }
            Err(e) if kiln_common::db::is_unique_violation(&e) => {
                return Err(ServiceError::invalid_field(
                    "fields",
                    "existing records break a unique rule of the new fields",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(workspace_id = %principal.workspace_id, model = %plural, version, "model changed");
        let model = find_model(&self.deps.db, principal.workspace_id, &model.id).await?;
        Ok(UpdateModelResponse { model, changes })
    }

    pub(crate) async fn delete(
        &self,
        principal: Principal,
        req: DeleteModelRequest,
    ) -> Result<DeleteModelResponse, ServiceError> {
        let _exclusive = self.workspaces.schema_exclusive(principal.workspace_id).await;
        let (model, _) = self.user_model(principal, &req.id, "deleted").await?;
        let plural = names::plural_ref(&model.plural).map_err(|e| anyhow::anyhow!("stored plural: {e}"))?;
        let table = Ident::table_of(&plural);
        if !req.confirm_data_loss {
            return Err(ServiceError::WouldLoseData {
                message: format!(
                    "deleting {plural} drops its table and every record in it; send confirm_data_loss to apply"
                ),
                losses: vec![FieldViolation::new(plural.as_str(), format!("table {table} and every record in it"))],
            });
        }
        let referrers = self.referrers(principal, &plural).await?;
        if !referrers.is_empty() {
            return Err(ServiceError::FailedPrecondition(format!(
                "{} point at {plural}; remove those fields first",
                referrers.join(", ")
            )));
        }
        let ns = self.workspaces.namespace(principal.workspace_id);
        let drop = format!("DROP TABLE {}", ns.table(&table));
        let model_id = Id(uuid::Uuid::parse_str(&model.id).map_err(|e| anyhow::anyhow!("stored model id: {e}"))?);
        let done: Result<(), sqlx::Error> = match self.workspaces.pool(principal.workspace_id).await? {
            WorkspacePool::Postgres(pool) => {
                async {
                    let mut conn = pool.acquire().await?;
                    let mut tx = conn.begin().await?;
                    sqlx::query("DELETE FROM models WHERE id = $1").bind(model_id).execute(&mut *tx).await?;
                    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut *tx).await?;
                    tx.commit().await
                }
                .await
            }
            // The table is dropped in a transaction of the workspace file, committed once
            // the metadata is gone: a failure to drop leaves both as they were.
            WorkspacePool::Sqlite(ws) => {
                let platform = &self.workspaces.sqlite_platform()?.writer;
                async {
                    let mut tables_conn = ws.writer.acquire().await?;
                    let mut tables = tables_conn.begin().await?;
                    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut *tables).await?;
                    let mut meta_conn = platform.acquire().await?;
                    let mut meta = meta_conn.begin().await?;
                    sqlx::query("DELETE FROM models WHERE id = $1").bind(model_id).execute(&mut *meta).await?;
                    meta.commit().await?;
                    if let Err(e) = tables.commit().await {
                        tracing::error!(error = %e, %table, "model deleted but its table could not be dropped");
                    }
                    Ok(())
                }
                .await
            }
        };
        self.catalog.forget(principal.workspace_id);
        done?;
        tracing::info!(workspace_id = %principal.workspace_id, model = %plural, "model deleted");
        Ok(DeleteModelResponse {})
    }

    /// The user models with a relation field pointing at `plural`, as `model.field`.
    async fn referrers(&self, principal: Principal, plural: &Ident) -> Result<Vec<String>, ServiceError> {
        let rows: Vec<(String, serde_json::Value)> = with_db!(&self.deps.db, pool => {
            sqlx::query("SELECT plural, fields FROM models WHERE workspace_id = $1 AND is_system = $2")
                .bind(Id(principal.workspace_id)).bind(false)
                .fetch_all(pool).await?
                .iter().map(|row| Ok::<_, sqlx::Error>((row.text("plural")?, row.json("fields")?)))
                .collect::<Result<Vec<_>, _>>()?
        });
        let mut referrers = Vec::new();
        for (other, fields) in rows {
            let fields: Vec<Field> = serde_json::from_value(fields).unwrap_or_default();
            for field in fields {
                if field.relation.as_ref().is_some_and(|r| r.target == plural.as_str()) && other != plural.as_str() {
                    referrers.push(format!("{other}.{}", field.name));
                }
            }
        }
        Ok(referrers)
    }

    pub(crate) async fn versions(
        &self,
        principal: Principal,
        req: ListModelVersionsRequest,
    ) -> Result<ListModelVersionsResponse, ServiceError> {
        let model = find_model(&self.deps.db, principal.workspace_id, req.id.trim())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no model `{}` in this workspace", req.id.trim())))?;
        let paging = Paging::<i32>::read(format!("versions of {}", model.id), req.page_size, &req.page_token)?;
        let model_id = Id(uuid::Uuid::parse_str(&model.id).map_err(|e| anyhow::anyhow!("stored model id: {e}"))?);
        let mut versions = with_db!(&self.deps.db, pool => {
            sqlx::query(
                "SELECT version, fields, author, summary, created_at FROM model_versions \
                 WHERE model_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
            )
            .bind(model_id).bind(paging.after.unwrap_or(i32::MAX)).bind(paging.fetch())
            .fetch_all(pool).await?
            .iter().map(|row| -> Result<ModelVersion, ServiceError> {
                Ok(ModelVersion {
                    model_id: model.id.clone(),
                    version: i32::try_from(row.int("version")?).unwrap_or(i32::MAX),
                    fields: serde_json::from_value(row.json("fields")?).unwrap_or_default(),
                    author: row.opt_id("author")?.map(|a| a.to_string()).unwrap_or_default(),
                    summary: row.text("summary")?,
                    created_at: Some(timestamp(row.time("created_at")?)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?
        });
        let next_page_token = paging.finish(&mut versions, |v| v.version);
        Ok(ListModelVersionsResponse { versions, next_page_token })
    }
}

async fn has_rows(pool: &WorkspacePool, table: &str) -> Result<bool, ServiceError> {
    let sql = format!("SELECT 1 FROM {table} LIMIT 1");
    let found = match pool {
        WorkspacePool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(p).await?.is_some(),
        WorkspacePool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(&p.reader).await?.is_some(),
    };
    Ok(found)
}

/// PostgreSQL: the plan as ALTER TABLE statements; drops first, then renames, then adds
/// (added columns start nullable; NOT NULL is set after the backfill).
fn alter_statements(ns: &Namespace, table: &Ident, plan: &Plan, old: &[FieldSpec], new: &[FieldSpec]) -> Vec<String> {
    let target = ns.table(table);
    let mut drops = Vec::new();
    let mut renames = Vec::new();
    let mut adds = Vec::new();
    for step in &plan.steps {
        match *step {
            Step::Keep { .. } => {}
            Step::Drop { old: o } => drops.push(format!("ALTER TABLE {target} DROP COLUMN {}", old[o].name.quoted())),
            Step::Rename { old: o, new: n } => {
                renames.push(format!(
                    "ALTER TABLE {target} RENAME COLUMN {} TO {}",
                    old[o].name.quoted(),
                    new[n].name.quoted()
                ));
                // Constraints are named after their field: they follow it, so errors
                // still name the field.
                for kind in Constraint::ALL.into_iter().filter(|k| k.applies(ns.dialect, &new[n])) {
                    let from = kiln_common::db::quote_ident(&kind.name(table.as_str(), old[o].name.as_str()));
                    let to = kiln_common::db::quote_ident(&kind.name(table.as_str(), new[n].name.as_str()));
                    renames.push(format!("ALTER TABLE {target} RENAME CONSTRAINT {from} TO {to}"));
                }
            }
            Step::Add { new: n } => {
                let mut nullable = new[n].clone();
                nullable.required = false;
                adds.push(format!(
                    "ALTER TABLE {target} ADD COLUMN {}",
                    schema::column_definition(ns, table, &nullable)
                ));
            }
        }
    }
    [drops, renames, adds].concat()
}

/// SQLite: builds the table anew under a temporary name, copies every record (renamed
/// columns mapped, added ones backfilled with bound defaults), swaps it in and checks
/// foreign keys, inside the caller's transaction, with foreign-key enforcement paused by
/// the caller.
async fn rebuild_sqlite_table(
    tx: &mut sqlx::SqliteConnection,
    ns: &Namespace,
    table: &Ident,
    plan: &Plan,
    old: &[FieldSpec],
    new: &[FieldSpec],
    backfill: &[(usize, Option<SqlValue>)],
) -> Result<(), sqlx::Error> {
    let temporary = kiln_common::db::quote_ident(&format!("{table}__rebuild"));
    let mut targets =
        vec!["\"id\"".to_string(), "\"created_at\"".into(), "\"updated_at\"".into(), "\"created_by\"".into()];
    let mut sources = targets.clone();
    let mut values = Vec::new();
    for step in &plan.steps {
        match *step {
            Step::Keep { old: o, new: n } | Step::Rename { old: o, new: n } => {
                targets.push(new[n].name.quoted());
                sources.push(old[o].name.quoted());
            }
            Step::Add { new: n } => {
                if let Some((_, Some(value))) = backfill.iter().find(|(i, _)| *i == n) {
                    values.push(value.clone());
                    targets.push(new[n].name.quoted());
                    sources.push(format!("${}", values.len()));
                }
            }
            Step::Drop { .. } => {}
        }
    }
    sqlx::query(sqlx::AssertSqlSafe(schema::table_statement(ns, &temporary, table, new))).execute(&mut *tx).await?;
    let copy = format!(
        "INSERT INTO {temporary} ({}) SELECT {} FROM {}",
        targets.join(", "),
        sources.join(", "),
        ns.table(table)
    );
    bind_values!(sqlx::query(sqlx::AssertSqlSafe(copy)), &values).execute(&mut *tx).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {}", ns.table(table)))).execute(&mut *tx).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE {temporary} RENAME TO {}", table.quoted())))
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(schema::index_statement(ns, table))).execute(&mut *tx).await?;
    if sqlx::query("PRAGMA foreign_key_check").fetch_optional(&mut *tx).await?.is_some() {
        return Err(sqlx::Error::Protocol("records would point at missing targets".into()));
    }
    Ok(())
}
