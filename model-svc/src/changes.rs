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

use kiln_common::records::{
    codec::{SqlValue, check_value},
    engine::RecordPool,
    fields::{Constraint, Dialect, FieldSpec, FieldType, parse_fields},
    names::{self, Ident},
};

use crate::{
    metadata::VersionRow,
    models::{ModelApi, find_model, text_rule},
    schema::{self, Namespace, Plan, Step},
    schema_writer::{self, Expect, SchemaWrite, Statement},
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
        let specs = parse_fields(&model.fields)
            .map_err(|v| anyhow::anyhow!("stored fields of {} no longer parse: {v:?}", model.plural))?;
        Ok((model, specs))
    }

    pub(crate) async fn plan_change(
        &self,
        principal: Principal,
        req: PlanModelChangeRequest,
    ) -> Result<PlanModelChangeResponse, ServiceError> {
        let (_, old) = self.user_model(principal, &req.id, "changed").await?;
        let new = parse_fields(&req.fields).map_err(ServiceError::invalid)?;
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
        let change = self.check_change(principal, &model, &old, &req).await?;
        confirm_losses(&change.plan, &old, req.confirm_data_loss)?;
        let plural = names::plural_ref(&model.plural).map_err(|e| anyhow::anyhow!("stored plural: {e}"))?;
        let table = Ident::table_of(&plural);
        let ns = self.workspaces.namespace(principal.workspace_id);
        let pool = self.workspaces.pool(principal.workspace_id).await?;
        let backfill = backfill(&pool, &ns, &table, &change).await?;
        let model_id = Id(uuid::Uuid::parse_str(&model.id).map_err(|e| anyhow::anyhow!("stored model id: {e}"))?);
        let version = model.version + 1;
        let changes = change.plan.describe(&old, &change.new);
        let write = SchemaWrite {
            model_id,
            metadata: version_statements(model_id, &model, &change, &changes, principal)?,
            tables: TableChange {
                ns: &ns,
                table: &table,
                plan: &change.plan,
                old: &old,
                new: &change.new,
                backfill: &backfill,
            }
            .statements(),
            pause_foreign_keys: ns.dialect == Dialect::Sqlite,
        };
        let applied = schema_writer::apply(&pool, self.sqlite_platform_writer(), &write).await;
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
        let before = model;
        let model = find_model(&self.deps.db, principal.workspace_id, &before.id).await?;
        self.announce(principal, "model.changed", Some(&before), model.as_ref()).await;
        Ok(UpdateModelResponse { model, changes })
    }

    /// The platform file's writer, where the platform is SQLite: metadata is written there.
    pub(crate) fn sqlite_platform_writer(&self) -> Option<&kiln_common::db::SqliteConns> {
        self.workspaces.sqlite_platform().ok().map(|pools| &pools.writer)
    }

    /// A change request checked against the model as it is: every field problem at once.
    async fn check_change(
        &self,
        principal: Principal,
        model: &Model,
        old: &[FieldSpec],
        req: &UpdateModelRequest,
    ) -> Result<CheckedChange, ServiceError> {
        let mut violations = Vec::new();
        let new = parse_fields(&req.fields).map_err(|v| violations.extend(v)).ok();
        let label = req.label.as_deref().map(|l| text_rule(&mut violations, "label", l, 100));
        let label_plural = req.label_plural.as_deref().map(|l| text_rule(&mut violations, "label_plural", l, 100));
        let description = req.description.as_deref().map(|d| text_rule(&mut violations, "description", d, 2000));
        let summary = text_rule(&mut violations, "summary", &req.summary, 500);
        violations.extend(self.missing_relation_targets(principal, &req.fields).await);
        let plan = match &new {
            Some(new) => schema::plan(old, new, &req.fields).map_err(|v| violations.extend(v)).ok(),
            None => None,
        };
        let (Some(mut new), Some(plan), true) = (new, plan, violations.is_empty()) else {
            return Err(ServiceError::invalid(violations));
        };
        let mut reserved = model.reserved_fields.clone();
        plan.number(old, &mut new, &mut reserved);
        let title_field = title_field_after(model, &new, req.title_field.as_deref())?;
        Ok(CheckedChange { new, plan, reserved, label, label_plural, description, summary, title_field })
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
        let model_id = Id(uuid::Uuid::parse_str(&model.id).map_err(|e| anyhow::anyhow!("stored model id: {e}"))?);
        let change = SchemaWrite {
            model_id,
            metadata: vec![Statement::new("DELETE FROM models WHERE id = $1").bind(SqlValue::Uuid(model_id))],
            tables: vec![Statement::new(format!("DROP TABLE {}", ns.table(&table)))],
            pause_foreign_keys: false,
        };
        let pool = self.workspaces.pool(principal.workspace_id).await?;
        let done = schema_writer::apply(&pool, self.sqlite_platform_writer(), &change).await;
        self.catalog.forget(principal.workspace_id);
        done?;
        tracing::info!(workspace_id = %principal.workspace_id, model = %plural, "model deleted");
        self.announce(principal, "model.deleted", Some(&model), None).await;
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
            // A model whose fields cannot be read may point anywhere: that is an error, not "none".
            let fields: Vec<Field> = serde_json::from_value(fields)
                .map_err(|e| anyhow::anyhow!("stored fields of {other} are malformed: {e}"))?;
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
                    fields: serde_json::from_value(row.json("fields")?)
                        .map_err(|e| anyhow::anyhow!("stored fields of a model version are malformed: {e}"))?,
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

async fn has_rows(pool: &RecordPool, table: &str) -> Result<bool, ServiceError> {
    let sql = format!("SELECT 1 FROM {table} LIMIT 1");
    let found = match pool {
        RecordPool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(p).await?.is_some(),
        RecordPool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(&p.reader).await?.is_some(),
    };
    Ok(found)
}

/// An update request, checked: the new fields, the plan from the old ones, and the
/// model's new labels and title.
struct CheckedChange {
    new: Vec<FieldSpec>,
    plan: Plan,
    /// The model's reserved fields after the change (its dropped fields added).
    reserved: Vec<kiln_proto::v1::ReservedField>,
    label: Option<String>,
    label_plural: Option<String>,
    description: Option<String>,
    summary: String,
    title_field: String,
}

/// The title field after a change: the one asked for, else the current one while it
/// exists, else the first text field (as on creation).
fn title_field_after(model: &Model, new: &[FieldSpec], asked: Option<&str>) -> Result<String, ServiceError> {
    match asked.map(str::trim) {
        Some(title) if !title.is_empty() => {
            let title = names::normalise(title).unwrap_or_default();
            if !new.iter().any(|s| s.name.as_str() == title) {
                return Err(ServiceError::invalid_field("title_field", "must be the name of one of the fields"));
            }
            Ok(title)
        }
        _ if new.iter().any(|s| s.name.as_str() == model.title_field) => Ok(model.title_field.clone()),
        _ => {
            Ok(new.iter().find(|s| s.ty == FieldType::Text).map(|s| s.name.to_string()).unwrap_or_else(|| "id".into()))
        }
    }
}

/// A plan that drops fields goes ahead only when the loss is confirmed.
fn confirm_losses(plan: &Plan, old: &[FieldSpec], confirmed: bool) -> Result<(), ServiceError> {
    let dropped: Vec<FieldViolation> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Drop { old: o } => Some(FieldViolation::new(old[*o].name.as_str(), "column and every value in it")),
            _ => None,
        })
        .collect();
    if dropped.is_empty() || confirmed {
        return Ok(());
    }
    let names: Vec<&str> = dropped.iter().map(|d| d.field.as_str()).collect();
    Err(ServiceError::WouldLoseData {
        message: format!("removing {} drops the data in it; send confirm_data_loss to apply", names.join(", ")),
        losses: dropped,
    })
}

/// The value each added field gives the records already there: its default, or none; a
/// required field without a default can only be added to an empty table.
async fn backfill(
    pool: &RecordPool,
    ns: &Namespace,
    table: &Ident,
    change: &CheckedChange,
) -> Result<Vec<(usize, Option<SqlValue>)>, ServiceError> {
    let mut backfill = Vec::new();
    for step in &change.plan.steps {
        let Step::Add { new: n } = *step else { continue };
        let spec = &change.new[n];
        match &spec.field.default_value {
            Some(default) => {
                let value = serde_json::to_value(default).unwrap_or_default();
                let value = check_value(spec, &value)
                    .map_err(|why| ServiceError::invalid_field(format!("fields[{n}].default_value"), why))?;
                backfill.push((n, Some(value)));
            }
            None if spec.required && has_rows(pool, &ns.table(table)).await? => {
                return Err(ServiceError::invalid_field(
                    format!("fields[{n}]"),
                    "a required field added to a model with records needs a default_value",
                ));
            }
            None => backfill.push((n, None)),
        }
    }
    Ok(backfill)
}

/// The metadata of a new version: the model row moved on from the version read (none
/// changed means someone else changed it meanwhile) and the version's own row.
fn version_statements(
    model_id: Id,
    model: &Model,
    change: &CheckedChange,
    changes: &[kiln_proto::v1::SchemaChange],
    principal: Principal,
) -> Result<Vec<Statement>, ServiceError> {
    let fields: Vec<Field> = change.new.iter().map(|s| s.field.clone()).collect();
    let fields_json = serde_json::to_value(&fields).map_err(|e| anyhow::anyhow!("encoding fields: {e}"))?;
    let reserved_json =
        serde_json::to_value(&change.reserved).map_err(|e| anyhow::anyhow!("encoding reserved fields: {e}"))?;
    let summary = match change.summary.as_str() {
        "" => changes.iter().map(|c| c.description.clone()).collect::<Vec<_>>().join("; "),
        given => given.to_string(),
    };
    let summary = if summary.is_empty() { "labels changed".to_string() } else { summary };
    let optional_text = |text: &Option<String>| match text {
        Some(text) => SqlValue::Text(text.clone()),
        None => SqlValue::Null(FieldType::Text),
    };
    let now = kiln_common::db::now();
    let version = i64::from(model.version) + 1;
    Ok(vec![
        Statement::new(
            "UPDATE models SET label = COALESCE($2, label), label_plural = COALESCE($3, label_plural), \
             description = COALESCE($4, description), title_field = $5, fields = $6, version = $7, \
             updated_at = $8, reserved_fields = $10 WHERE id = $1 AND version = $9",
        )
        .bind(SqlValue::Uuid(model_id))
        .bind(optional_text(&change.label))
        .bind(optional_text(&change.label_plural))
        .bind(optional_text(&change.description))
        .bind(SqlValue::Text(change.title_field.clone()))
        .bind(SqlValue::Json(fields_json.clone()))
        .bind(SqlValue::Int(version))
        .bind(SqlValue::DateTime(now))
        .bind(SqlValue::Int(i64::from(model.version)))
        .bind(SqlValue::Json(reserved_json))
        .expect(Expect::ChangesARow),
        VersionRow {
            model_id,
            version,
            fields: fields_json,
            author: Some(Id(principal.user_id)),
            summary,
            created_at: now,
        }
        .insert(),
    ])
}

/// A model's table going from its old fields to its new ones by `plan`; `backfill` is
/// the value each added field gives the records already there.
struct TableChange<'a> {
    ns: &'a Namespace,
    table: &'a Ident,
    plan: &'a Plan,
    old: &'a [FieldSpec],
    new: &'a [FieldSpec],
    backfill: &'a [(usize, Option<SqlValue>)],
}

impl TableChange<'_> {
    fn statements(&self) -> Vec<Statement> {
        match self.ns.dialect {
            Dialect::Postgres => self.alter_statements(),
            Dialect::Sqlite => self.rebuild_statements(),
        }
    }

    /// PostgreSQL: the plan as ALTER TABLE statements; drops first, then renames, then adds
    /// (added columns start nullable), then the backfill and NOT NULL of added fields.
    fn alter_statements(&self) -> Vec<Statement> {
        let TableChange { ns, table, plan, old, new, backfill } = *self;
        let target = ns.table(table);
        let mut drops = Vec::new();
        let mut renames = Vec::new();
        let mut adds = Vec::new();
        for step in &plan.steps {
            match *step {
                Step::Keep { .. } => {}
                Step::Drop { old: o } => {
                    drops.push(format!("ALTER TABLE {target} DROP COLUMN {}", old[o].name.quoted()))
                }
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
        let mut filled = Vec::new();
        for (n, value) in backfill {
            let column = new[*n].name.quoted();
            if let Some(value) = value {
                let placeholder = value.placeholder(1, Dialect::Postgres);
                filled
                    .push(Statement::new(format!("UPDATE {target} SET {column} = {placeholder}")).bind(value.clone()));
            }
            if new[*n].required {
                filled.push(Statement::new(format!("ALTER TABLE {target} ALTER COLUMN {column} SET NOT NULL")));
            }
        }
        [drops, renames, adds].concat().into_iter().map(Statement::new).chain(filled).collect()
    }

    /// SQLite: the table built anew under a temporary name, every record copied (renamed
    /// columns mapped, added ones backfilled with bound defaults), swapped in, and foreign
    /// keys checked; run in one transaction with foreign-key enforcement paused.
    fn rebuild_statements(&self) -> Vec<Statement> {
        let TableChange { ns, table, plan, old, new, backfill } = *self;
        let temporary = kiln_common::db::quote_ident(&format!("{table}__rebuild"));
        let mut targets =
            vec!["\"id\"".to_string(), "\"created_at\"".into(), "\"updated_at\"".into(), "\"created_by\"".into()];
        let mut sources = targets.clone();
        let mut copy = Statement::new("");
        for step in &plan.steps {
            match *step {
                Step::Keep { old: o, new: n } | Step::Rename { old: o, new: n } => {
                    targets.push(new[n].name.quoted());
                    sources.push(old[o].name.quoted());
                }
                Step::Add { new: n } => {
                    if let Some((_, Some(value))) = backfill.iter().find(|(i, _)| *i == n) {
                        copy.values.push(value.clone());
                        targets.push(new[n].name.quoted());
                        sources.push(format!("${}", copy.values.len()));
                    }
                }
                Step::Drop { .. } => {}
            }
        }
        copy.sql = format!(
            "INSERT INTO {temporary} ({}) SELECT {} FROM {}",
            targets.join(", "),
            sources.join(", "),
            ns.table(table)
        );
        vec![
            Statement::new(schema::table_statement(ns, &temporary, table, new)),
            copy,
            Statement::new(format!("DROP TABLE {}", ns.table(table))),
            Statement::new(format!("ALTER TABLE {temporary} RENAME TO {}", table.quoted())),
            Statement::new(schema::index_statement(ns, table)),
            Statement::new("PRAGMA foreign_key_check").expect(Expect::NoRows),
        ]
    }
}
