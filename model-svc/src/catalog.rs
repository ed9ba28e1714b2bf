//! The compiled models of each workspace, kept between calls: field specs parsed once,
//! with their table, select list and scope, so a records call costs no metadata query.
//!
//! Freshness: a model change holds the workspace's schema lock exclusively
//! ([`Workspaces::schema_exclusive`]) while it commits and [`Catalog::forget`]s the
//! workspace; record calls hold the lock shared from lookup to their last statement, so
//! within a process no call runs on a model older than a committed change. Across
//! processes (several model roles on one PostgreSQL), every statement a records call
//! sends carries its model's version ([`CompiledModel::guard`]); a statement that finds
//! the version moved on, or a column or table gone, is retried once on a fresh lookup.
//! At most [`CAPACITY`] workspaces are kept, the least recently used going first.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use kiln_common::{
    Db, ServiceError,
    db::{Id, RowExt},
    with_db_read,
};
use uuid::Uuid;

use crate::{
    models::{COLUMNS, model_from_row},
    names::{self, Ident},
    records::{self, SqlValue},
    schema::{Dialect, FieldSpec, FieldType, parse_fields, parse_system_fields},
    workspace::{WorkspacePool, Workspaces},
};

/// Workspaces whose models are kept compiled, at most.
pub const CAPACITY: usize = 1024;

/// A model ready for records calls.
#[derive(Debug)]
pub struct CompiledModel {
    pub id: Id,
    pub version: i32,
    pub plural: Ident,
    pub specs: Vec<FieldSpec>,
    /// Quoted (and schema-qualified) for SQL.
    pub table: String,
    /// Bare, for reading constraint names.
    pub table_name: String,
    pub dialect: Dialect,
    /// Set for system models: their platform tables hold every workspace's rows, so every
    /// statement is limited to this workspace.
    pub scope: Option<Id>,
    /// The columns of a record, decimals read as text on PostgreSQL (see `records`).
    pub select_list: String,
}

/// A column everyone can sort and filter by, beyond the model's fields.
pub fn system_column(name: &str) -> Option<FieldType> {
    match name {
        "id" | "created_by" => Some(FieldType::Uuid),
        "created_at" | "updated_at" => Some(FieldType::DateTime),
        _ => None,
    }
}

impl CompiledModel {
    fn compile(model: &kiln_proto::v1::Model, workspaces: &Workspaces, workspace_id: Uuid) -> anyhow::Result<Self> {
        let plural = names::plural_ref(&model.plural).map_err(|e| anyhow::anyhow!("stored plural: {e}"))?;
        let id = Id(Uuid::parse_str(&model.id)?);
        let ns = workspaces.namespace(workspace_id);
        let (specs, table, table_name, scope) = if model.is_system {
            let specs = parse_system_fields(&model.fields)
                .map_err(|v| anyhow::anyhow!("seeded fields of {plural} do not parse: {v:?}"))?;
            let table =
                names::plural_ref(&model.table_name).map_err(|e| anyhow::anyhow!("platform table of {plural}: {e}"))?;
            (specs, table.quoted(), table.to_string(), Some(Id(workspace_id)))
        } else {
            let specs = parse_fields(&model.fields)
                .map_err(|v| anyhow::anyhow!("stored fields of {plural} no longer parse: {v:?}"))?;
            let table = Ident::table_of(&plural);
            (specs, ns.table(&table), table.to_string(), None)
        };
        let mut columns: Vec<String> =
            records::SYSTEM_COLUMNS.iter().map(|c| kiln_common::db::quote_ident(c)).collect();
        for spec in &specs {
            let column = spec.name.quoted();
            columns.push(match (ns.dialect, spec.ty) {
                // Its exact text, scale and all (see `records`).
                (Dialect::Postgres, FieldType::Decimal) => format!("{column}::text AS {column}"),
                _ => column,
            });
        }
        Ok(CompiledModel {
            id,
            version: model.version,
            plural,
            specs,
            table,
            table_name,
            dialect: ns.dialect,
            scope,
            select_list: columns.join(", "),
        })
    }

    /// `"workspace_id" = $n` for scoped tables (binding the scope).
    pub fn scope_condition(&self, bound: &mut Vec<SqlValue>) -> Option<String> {
        let scope = self.scope?;
        bound.push(SqlValue::Uuid(scope));
        Some(format!("\"workspace_id\" = ${}", bound.len()))
    }

    /// Whether statements on this model carry a version guard ([`Self::guard`]).
    pub fn guarded(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// On PostgreSQL, a condition true only while the model is still at this version
    /// (binding id and version); another process may have changed it. On SQLite, whose
    /// workspaces one process serves, nothing: the schema lock is enough.
    pub fn guard(&self, bound: &mut Vec<SqlValue>) -> Option<String> {
        if !self.guarded() {
            return None;
        }
        bound.push(SqlValue::Uuid(self.id));
        bound.push(SqlValue::Int(i64::from(self.version)));
        Some(format!(
            "EXISTS (SELECT 1 FROM \"models\" WHERE \"id\" = ${} AND \"version\" = ${})",
            bound.len() - 1,
            bound.len()
        ))
    }

    /// The type of a sortable or filterable column, by name.
    pub fn column_type(&self, name: &str) -> Option<(Ident, FieldType, Option<&FieldSpec>)> {
        if let Some(ty) = system_column(name) {
            return Some((names::plural_ref(name).ok()?, ty, None));
        }
        self.specs.iter().find(|s| s.name.as_str() == name).map(|s| (s.name.clone(), s.ty, Some(s)))
    }
}

/// A workspace's models by plural; a model whose stored fields do not compile keeps why.
type Compiled = HashMap<String, Result<Arc<CompiledModel>, String>>;
/// Compiled workspaces, each with when it was last used.
type Cache = HashMap<Uuid, (Arc<Compiled>, Instant)>;

#[derive(Debug, Clone)]
pub struct Catalog {
    workspaces: Workspaces,
    cache: Arc<Mutex<Cache>>,
}

impl Catalog {
    pub fn new(workspaces: Workspaces) -> Self {
        Catalog { workspaces, cache: Arc::default() }
    }

    fn db(&self) -> &Db {
        self.workspaces.platform()
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The workspace's model with this plural; `None` if it has none.
    pub async fn model(&self, workspace_id: Uuid, plural: &str) -> Result<Option<Arc<CompiledModel>>, ServiceError> {
        let hit = self.cached().get_mut(&workspace_id).map(|(models, used)| {
            *used = Instant::now();
            models.clone()
        });
        let models = match hit {
            // A plural this process has not seen may be a model made by another process.
            Some(models) if models.contains_key(plural) => models,
            _ => self.load(workspace_id).await?,
        };
        match models.get(plural) {
            None => Ok(None),
            Some(Ok(model)) => Ok(Some(model.clone())),
            Some(Err(why)) => Err(anyhow::anyhow!("{why}").into()),
        }
    }

    async fn load(&self, workspace_id: Uuid) -> Result<Arc<Compiled>, ServiceError> {
        let sql = format!("SELECT {COLUMNS} FROM models WHERE workspace_id = $1");
        let models = with_db_read!(self.db(), pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(workspace_id)).fetch_all(pool).await?
                .iter().map(model_from_row).collect::<Result<Vec<_>, ServiceError>>()?
        });
        let compiled: Compiled = models
            .iter()
            .map(|model| {
                let compiled = CompiledModel::compile(model, &self.workspaces, workspace_id)
                    .map(Arc::new)
                    .map_err(|e| format!("model {}: {e:#}", model.plural));
                (model.plural.clone(), compiled)
            })
            .collect();
        let compiled = Arc::new(compiled);
        let mut cache = self.cached();
        if cache.len() >= CAPACITY
            && !cache.contains_key(&workspace_id)
            && let Some(oldest) = cache.iter().min_by_key(|(_, (_, used))| *used).map(|(id, _)| *id)
        {
            cache.remove(&oldest);
        }
        cache.insert(workspace_id, (compiled.clone(), Instant::now()));
        Ok(compiled)
    }

    /// Drops what is kept of a workspace's models: call it, holding the workspace's
    /// schema lock exclusively, once a change to its models has committed.
    pub fn forget(&self, workspace_id: Uuid) {
        self.cached().remove(&workspace_id);
    }

    /// Whether `model` is still the stored version (false if it is gone).
    pub async fn is_current(&self, model: &CompiledModel) -> Result<bool, ServiceError> {
        let version: Option<i64> = with_db_read!(self.db(), pool => {
            sqlx::query("SELECT version FROM models WHERE id = $1").bind(model.id).fetch_optional(pool).await?
                .map(|row| row.int("version")).transpose()?
        });
        Ok(version == Some(i64::from(model.version)))
    }

    /// The connections holding the model's records.
    pub async fn pool(&self, workspace_id: Uuid, model: &CompiledModel) -> Result<WorkspacePool, ServiceError> {
        match (model.scope, self.db()) {
            (Some(_), Db::Postgres(pool)) => Ok(WorkspacePool::Postgres(pool.clone())),
            (Some(_), Db::Sqlite(pools)) => Ok(WorkspacePool::Sqlite(pools.clone())),
            (None, _) => Ok(self.workspaces.pool(workspace_id).await?),
        }
    }
}
