//! The compiled user models of each workspace, kept between calls (field specs parsed
//! once, with their table and select list, so a records call costs no metadata query):
//! model-svc's [`ModelSource`] for the record engine.
//!
//! Freshness: a model change holds the workspace's schema lock exclusively
//! ([`Workspaces::schema_exclusive`]) while it commits and [`Catalog::forget`]s the
//! workspace; record calls hold the lock shared from lookup to their last statement, so
//! within a process no call runs on a model older than a committed change. Across
//! processes (several model roles on one PostgreSQL), every statement a records call
//! sends carries its model's version ([`Placement::versions_table`]); a statement that
//! finds the version moved on, or a column or table gone, is retried once on a fresh
//! lookup.
//! At most [`CAPACITY`] workspaces are kept, the least recently used going first.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use kiln_common::{
    Db, ServiceError,
    db::{Id, RowExt},
    records::{
        engine::{CompiledModel, ModelSource, Placement, RecordPool},
        fields::parse_fields,
        names::{self, Ident},
    },
    with_db_read,
};
use tokio::sync::OwnedRwLockReadGuard;
use uuid::Uuid;

use crate::{contract::Contract, models::user_models, workspace::Workspaces};

/// Workspaces whose models are kept compiled, at most.
pub const CAPACITY: usize = 1024;

/// A user model as the record engine runs it: its `ent_<plural>` table in the
/// workspace's namespace, guarded by its version on PostgreSQL, where other processes
/// may change it. (On SQLite one process serves the workspace; the schema lock is enough.)
fn compile(
    model: &kiln_proto::v1::Model,
    workspaces: &Workspaces,
    workspace_id: Uuid,
) -> anyhow::Result<CompiledModel> {
    let plural = names::plural_ref(&model.plural).map_err(|e| anyhow::anyhow!("stored plural: {e}"))?;
    let specs =
        parse_fields(&model.fields).map_err(|v| anyhow::anyhow!("stored fields of {plural} no longer parse: {v:?}"))?;
    let ns = workspaces.namespace(workspace_id);
    let table = Ident::table_of(&plural);
    let placement = Placement {
        table: ns.table(&table),
        table_name: table.to_string(),
        dialect: ns.dialect,
        shared_table: false,
        versions_table: ns.schema.is_some().then(|| "\"models\"".to_string()),
    };
    Ok(CompiledModel::new(Id(Uuid::parse_str(&model.id)?), model.version, plural, specs, placement))
}

/// A workspace's models by plural; a model whose stored fields do not compile keeps why.
type Compiled = HashMap<String, Result<Arc<CompiledModel>, String>>;
/// Compiled workspaces, each with when it was last used.
type Cache = HashMap<Uuid, (Arc<Compiled>, Instant)>;

#[derive(Debug, Clone)]
pub struct Catalog {
    workspaces: Workspaces,
    cache: Arc<Mutex<Cache>>,
    /// Each workspace's typed contract, made from the same models and forgotten with them.
    contracts: Arc<Mutex<HashMap<Uuid, Arc<Contract>>>>,
}

impl Catalog {
    pub fn new(workspaces: Workspaces) -> Self {
        Catalog { workspaces, cache: Arc::default(), contracts: Arc::default() }
    }

    /// The workspace's typed contract, if one is kept.
    pub fn contract(&self, workspace_id: Uuid) -> Option<Arc<Contract>> {
        self.contracts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&workspace_id).cloned()
    }

    /// Keeps a workspace's contract until its models change.
    pub fn keep_contract(&self, workspace_id: Uuid, contract: Arc<Contract>) {
        let mut contracts = self.contracts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if contracts.len() >= CAPACITY {
            contracts.clear();
        }
        contracts.insert(workspace_id, contract);
    }

    fn db(&self) -> &Db {
        self.workspaces.platform()
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The workspace's user model with this plural; `None` if it has none.
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
        // System models' records are not model-svc's (see `entities`).
        let models = user_models(self.db(), workspace_id).await?;
        let compiled: Compiled = models
            .iter()
            .map(|model| {
                let compiled = compile(model, &self.workspaces, workspace_id)
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
        self.contracts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&workspace_id);
    }

    /// Whether `model` is still the stored version (false if it is gone).
    pub async fn is_current(&self, model: &CompiledModel) -> Result<bool, ServiceError> {
        let version: Option<i64> = with_db_read!(self.db(), pool => {
            sqlx::query("SELECT version FROM models WHERE id = $1").bind(model.id).fetch_optional(pool).await?
                .map(|row| row.int("version")).transpose()?
        });
        Ok(version == Some(i64::from(model.version)))
    }
}

#[tonic::async_trait]
impl ModelSource for Catalog {
    type Hold = OwnedRwLockReadGuard<()>;

    async fn hold(&self, workspace: Uuid) -> Self::Hold {
        self.workspaces.schema_shared(workspace).await
    }

    async fn model(&self, workspace: Uuid, plural: &str) -> Result<Option<Arc<CompiledModel>>, ServiceError> {
        Catalog::model(self, workspace, plural).await
    }

    async fn pool(&self, workspace: Uuid, _: &CompiledModel) -> Result<RecordPool, ServiceError> {
        Ok(self.workspaces.pool(workspace).await?)
    }

    async fn is_current(&self, model: &CompiledModel) -> Result<bool, ServiceError> {
        Catalog::is_current(self, model).await
    }

    fn forget(&self, workspace: Uuid) {
        Catalog::forget(self, workspace)
    }
}
