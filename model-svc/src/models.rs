//! ModelService: the workspace's models as stored in `models` and `model_versions`;
//! listing, reading and paging them, their versions, and their creation with the table
//! that holds their records. Every RPC of the service is answered here; changing and
//! deleting a model (plan, update, delete) are carried out by [`crate::changes`].

use std::future::Future;

use kiln_common::records::{
    fields::{FieldSpec, FieldType, default_label, parse_fields},
    names::{self, ModelNames},
};
use kiln_common::{
    Principal, ServiceError,
    db::{Id, RowExt},
    paging::Paging,
    with_db, with_db_read,
};
use kiln_common::{error::FieldViolation, events::Event};
use kiln_proto::v1::{
    CreateModelRequest, CreateModelResponse, DeleteModelRequest, DeleteModelResponse, Field, GetModelRequest,
    GetModelResponse, GetTypedContractRequest, GetTypedContractResponse, ListModelVersionsRequest,
    ListModelVersionsResponse, ListModelsRequest, ListModelsResponse, Model, PlanModelChangeRequest,
    PlanModelChangeResponse, UpdateModelRequest, UpdateModelResponse, model_service_server::ModelService,
};
use tonic::{Request, Response, Status};

use crate::{
    Callers, ModelDeps,
    catalog::Catalog,
    metadata::{MODEL_ROW_COLUMNS, ModelRow, VersionRow},
    schema,
    schema_writer::{self, SchemaWrite, Statement},
    typed::Contracts,
    workspace::Workspaces,
};

#[derive(Debug, Clone)]
pub struct ModelApi {
    pub(crate) deps: ModelDeps,
    pub(crate) workspaces: Workspaces,
    pub(crate) catalog: Catalog,
    callers: Callers,
    contracts: Contracts,
}

impl ModelApi {
    pub fn new(
        deps: ModelDeps,
        workspaces: Workspaces,
        catalog: Catalog,
        callers: Callers,
        contracts: Contracts,
    ) -> Self {
        ModelApi { deps, workspaces, catalog, callers, contracts }
    }

    async fn list(&self, principal: Principal, req: ListModelsRequest) -> Result<ListModelsResponse, ServiceError> {
        let paging =
            Paging::<String>::read(format!("models of {}", principal.workspace_id), req.page_size, &req.page_token)?;
        let after = paging.after.as_deref().unwrap_or_default();
        let sql = format!(
            "SELECT {MODEL_ROW_COLUMNS} FROM models WHERE workspace_id = $1 AND plural > $2 ORDER BY plural LIMIT $3"
        );
        let mut models = with_db!(&self.deps.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(principal.workspace_id)).bind(after).bind(paging.fetch())
                .fetch_all(pool).await?
                .iter().map(model_from_row).collect::<Result<Vec<_>, ServiceError>>()?
        });
        let next_page_token = paging.finish(&mut models, |m| m.plural.clone());
        Ok(ListModelsResponse { models, next_page_token })
    }

    pub(crate) async fn get(
        &self,
        principal: Principal,
        req: GetModelRequest,
    ) -> Result<GetModelResponse, ServiceError> {
        let key = req.id.trim();
        if key.is_empty() {
            return Err(ServiceError::invalid_field("id", "is required"));
        }
        let model = find_model(&self.deps.db, principal.workspace_id, key).await?;
        Ok(GetModelResponse {
            model: Some(model.ok_or_else(|| ServiceError::NotFound(format!("no model `{key}` in this workspace")))?),
        })
    }
}

impl ModelApi {
    /// Violations for relation fields whose target is not a user model of the workspace.
    pub(crate) async fn missing_relation_targets(&self, principal: Principal, fields: &[Field]) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            let Some(target) = field.relation.as_ref().and_then(|r| names::plural_ref(&r.target).ok()) else {
                continue;
            };
            let found = find_model(&self.deps.db, principal.workspace_id, target.as_str()).await;
            if !matches!(found, Ok(Some(ref model)) if !model.is_system && model.plural == target.as_str()) {
                violations.push(FieldViolation::new(
                    format!("fields[{i}].relation.target"),
                    format!("no user model `{target}` in this workspace"),
                ));
            }
        }
        violations
    }
}

/// A workspace's model by id, slug or plural.
pub(crate) async fn find_model(
    db: &kiln_common::Db,
    workspace_id: uuid::Uuid,
    key: &str,
) -> Result<Option<Model>, ServiceError> {
    // Ids, slugs and plurals are short ASCII; anything else cannot name a model.
    if key.is_empty() || key.len() > 64 || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Ok(None);
    }
    // An id, or else a plural, or else a slug, in that order should two models answer;
    // all bound, never spliced.
    let by_id = uuid::Uuid::parse_str(key).ok().map(Id);
    let sql = format!(
        "SELECT {MODEL_ROW_COLUMNS} FROM models WHERE workspace_id = $1 AND (id = $2 OR slug = $3 OR plural = $3) \
         ORDER BY CASE WHEN id = $2 THEN 0 WHEN plural = $3 THEN 1 ELSE 2 END LIMIT 1"
    );
    let model = with_db_read!(db, pool => {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(workspace_id)).bind(by_id).bind(key)
            .fetch_optional(pool).await?
            .as_ref().map(model_from_row).transpose()?
    });
    Ok(model)
}

/// A checked CreateModelRequest.
struct NewModel {
    name: String,
    names: ModelNames,
    label: String,
    label_plural: String,
    description: String,
    title_field: String,
    specs: Vec<FieldSpec>,
}

pub(crate) fn text_rule(violations: &mut Vec<FieldViolation>, field: &str, value: &str, max: usize) -> String {
    let value = value.trim();
    if value.chars().count() > max || value.chars().any(|c| c.is_control() && c != '\n') {
        violations
            .push(FieldViolation::new(field, format!("must be at most {max} characters, without control characters")));
    }
    value.to_string()
}

impl ModelApi {
    async fn create(&self, principal: Principal, req: CreateModelRequest) -> Result<CreateModelResponse, ServiceError> {
        let new = self.check_new_model(principal, &req).await?;
        let _exclusive = self.workspaces.schema_exclusive(principal.workspace_id).await;
        let id = Id::new();
        let mut fields: Vec<Field> = new.specs.iter().map(|s| Field { number: 0, ..s.field.clone() }).collect();
        schema::number_fields(&mut fields, &[]);
        let fields_json = serde_json::to_value(&fields).map_err(|e| anyhow::anyhow!("encoding fields: {e}"))?;
        let ddl =
            schema::create_table(&self.workspaces.namespace(principal.workspace_id), &new.names.table, &new.specs);
        let taken = || ServiceError::AlreadyExists {
            message: format!("a model named `{}` already exists in this workspace", new.names.plural),
            field: Some("name".into()),
        };
        // Plurals and slugs share one namespace (both name a model in URLs): neither may
        // be another model's plural or slug.
        let (plural, slug) = (new.names.plural.as_str(), new.names.singular.as_str());
        let clash: Option<i32> = with_db!(&self.deps.db, pool => {
            sqlx::query_scalar(
                "SELECT 1 FROM models WHERE workspace_id = $1 AND (plural IN ($2, $3) OR slug IN ($2, $3)) LIMIT 1",
            )
            .bind(Id(principal.workspace_id)).bind(plural).bind(slug)
            .fetch_optional(pool).await?
        });
        if clash.is_some() {
            return Err(taken());
        }
        let write = SchemaWrite {
            model_id: id,
            metadata: new_model_statements(id, principal, &new, fields_json),
            tables: ddl.into_iter().map(Statement::new).collect(),
            pause_foreign_keys: false,
        };
        let pool = self.workspaces.pool(principal.workspace_id).await?;
        let written = schema_writer::apply(&pool, self.sqlite_platform_writer(), &write).await;
        self.catalog.forget(principal.workspace_id);
        match written {
            Ok(()) => {}
            Err(e) if kiln_common::db::is_unique_violation(&e) => return Err(taken()),
            // Not a model's: a table made by hand in the workspace's database.
            Err(e) if kiln_common::db::is_duplicate_table(&e) => {
                return Err(ServiceError::AlreadyExists {
                    message: format!(
                        "the table `{}` that this model needs already exists in the workspace's database, \
                         though no model owns it; drop or rename it, or choose another name",
                        new.names.table
                    ),
                    field: Some("name".into()),
                });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(workspace_id = %principal.workspace_id, model = %new.names.plural, "model created");
        let model = self.get(principal, GetModelRequest { id: id.0.to_string() }).await?.model;
        self.announce(principal, "model.created", None, model.as_ref()).await;
        Ok(CreateModelResponse { model })
    }

    /// Appends a committed model change's event (`model.created|changed|deleted`, the
    /// model before and after as the API shows it) to the outbox.
    pub(crate) async fn announce(
        &self,
        principal: Principal,
        kind: &str,
        before: Option<&Model>,
        after: Option<&Model>,
    ) {
        let Some(model) = after.or(before) else { return };
        let json = |model: Option<&Model>| model.and_then(|m| serde_json::to_value(m).ok());
        let event = Event::new(principal.workspace_id, kind, "models", &model.id, Some(principal.user_id))
            .with_before(json(before))
            .with_after(json(after));
        self.deps.outbox.keep(&[event], None).await;
    }

    async fn check_new_model(&self, principal: Principal, req: &CreateModelRequest) -> Result<NewModel, ServiceError> {
        let mut violations = Vec::new();
        let names = names::model_names(&req.name, Some(&req.plural))
            .map_err(|(field, e)| violations.push(FieldViolation::new(field, e.0)))
            .ok();
        let specs = parse_fields(&req.fields).map_err(|v| violations.extend(v)).ok();
        let label = text_rule(&mut violations, "label", &req.label, 100);
        let label_plural = text_rule(&mut violations, "label_plural", &req.label_plural, 100);
        let description = text_rule(&mut violations, "description", &req.description, 2000);
        // Checked against the fields as given, so these are reported even when a field is bad.
        let title_field = names::normalise(&req.title_field).unwrap_or_default();
        let given: Vec<String> = req.fields.iter().filter_map(|f| names::normalise(&f.name).ok()).collect();
        if !req.title_field.trim().is_empty() && !given.contains(&title_field) {
            violations.push(FieldViolation::new("title_field", "must be the name of one of the fields"));
        }
        violations.extend(self.missing_relation_targets(principal, &req.fields).await);
        let (Some(names), Some(specs), true) = (names, specs, violations.is_empty()) else {
            return Err(ServiceError::invalid(violations));
        };
        let title_field = if title_field.is_empty() {
            specs.iter().find(|s| s.ty == FieldType::Text).map(|s| s.name.to_string()).unwrap_or_else(|| "id".into())
        } else {
            title_field
        };
        Ok(NewModel {
            name: req.name.trim().to_string(),
            label: if label.is_empty() { default_label(names.singular.as_str()) } else { label },
            label_plural: if label_plural.is_empty() { default_label(names.plural.as_str()) } else { label_plural },
            names,
            description,
            title_field,
            specs,
        })
    }
}

/// The metadata of a new model: its row and its first version.
fn new_model_statements(id: Id, principal: Principal, new: &NewModel, fields: serde_json::Value) -> Vec<Statement> {
    let now = kiln_common::db::now();
    let row = ModelRow {
        id,
        workspace_id: Id(principal.workspace_id),
        name: new.name.clone(),
        singular: new.names.singular.to_string(),
        plural: new.names.plural.to_string(),
        slug: new.names.singular.to_string(),
        label: new.label.clone(),
        label_plural: new.label_plural.clone(),
        description: new.description.clone(),
        title_field: new.title_field.clone(),
        is_system: false,
        version: 1,
        fields: fields.clone(),
        table_name: new.names.table.to_string(),
        created_at: now,
        updated_at: now,
        reserved_fields: serde_json::json!([]),
    };
    let version = VersionRow {
        model_id: id,
        version: 1,
        fields,
        author: Some(Id(principal.user_id)),
        summary: "created".into(),
        created_at: now,
    };
    vec![row.insert(), version.insert()]
}

/// The workspace's user models (system models' records are not model-svc's, and their
/// typed services are `kiln.v1`'s).
pub(crate) async fn user_models(db: &kiln_common::Db, workspace_id: uuid::Uuid) -> Result<Vec<Model>, ServiceError> {
    let sql = format!("SELECT {MODEL_ROW_COLUMNS} FROM models WHERE workspace_id = $1 AND NOT is_system");
    let models = with_db_read!(db, pool => {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(workspace_id)).fetch_all(pool).await?
            .iter().map(model_from_row).collect::<Result<Vec<_>, ServiceError>>()?
    });
    Ok(models)
}

/// A model's row, selected with [`MODEL_ROW_COLUMNS`], as the API answers it.
pub(crate) fn model_from_row(row: &impl RowExt) -> Result<Model, ServiceError> {
    ModelRow::read(row)?.into_message()
}

/// Runs a model change to its end even if the caller goes away: a change stopped between
/// the workspace file and the platform file (SQLite) would leave them disagreeing. It
/// stays in the call's span (trace).
async fn run_to_completion<T: Send + 'static>(
    change: impl Future<Output = Result<T, ServiceError>> + Send + 'static,
) -> Result<T, ServiceError> {
    use tracing::Instrument;
    tokio::spawn(change.in_current_span()).await.map_err(|e| anyhow::anyhow!("model change task failed: {e}"))?
}

#[tonic::async_trait]
impl ModelService for ModelApi {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_models(&self, request: Request<ListModelsRequest>) -> Result<Response<ListModelsResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        Ok(Response::new(self.list(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_model(
        &self,
        request: Request<CreateModelRequest>,
    ) -> Result<Response<CreateModelResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        let (api, request) = (self.clone(), request.into_inner());
        Ok(Response::new(run_to_completion(async move { api.create(principal, request).await }).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn plan_model_change(
        &self,
        request: Request<PlanModelChangeRequest>,
    ) -> Result<Response<PlanModelChangeResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        Ok(Response::new(self.plan_change(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_model(
        &self,
        request: Request<UpdateModelRequest>,
    ) -> Result<Response<UpdateModelResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        let (api, request) = (self.clone(), request.into_inner());
        Ok(Response::new(run_to_completion(async move { api.update(principal, request).await }).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_model(
        &self,
        request: Request<DeleteModelRequest>,
    ) -> Result<Response<DeleteModelResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        let (api, request) = (self.clone(), request.into_inner());
        Ok(Response::new(run_to_completion(async move { api.delete(principal, request).await }).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_model_versions(
        &self,
        request: Request<ListModelVersionsRequest>,
    ) -> Result<Response<ListModelVersionsResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        Ok(Response::new(self.versions(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn get_typed_contract(
        &self,
        request: Request<GetTypedContractRequest>,
    ) -> Result<Response<GetTypedContractResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        let contract = self.contracts.of(principal, request.metadata()).await?;
        Ok(Response::new(GetTypedContractResponse {
            package: contract.package.clone(),
            file_name: contract.file_name().to_string(),
            proto: contract.proto_source(),
            descriptor_set: contract.descriptor_set(),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn get_model(&self, request: Request<GetModelRequest>) -> Result<Response<GetModelResponse>, Status> {
        let principal = self.callers.principal(request.metadata()).await?;
        Ok(Response::new(self.get(principal, request.into_inner()).await?))
    }
}
