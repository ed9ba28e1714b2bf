//! ApplicationService: applications and their components, typed, over the records of
//! the `applications` and `components` kinds (the same rows and rules the generic
//! records routes serve), and GenerateApplication, which opens a build with what it will
//! render and runs the workspace's build workflow to queue it.

use std::collections::HashMap;

use kiln_common::{Authenticator, Db, GrpcChannel, Principal, ServiceError, error::FieldViolation, records::names};
use kiln_proto::v1::{
    AbandonBuildRequest, Application, ApplicationConfig, Build, Component, CreateApplicationRequest,
    CreateApplicationResponse, CreateComponentRequest, CreateComponentResponse, DeleteApplicationRequest,
    DeleteApplicationResponse, DeleteComponentRequest, DeleteComponentResponse, GenerateApplicationRequest,
    GenerateApplicationResponse, GetApplicationRequest, GetApplicationResponse, GetModelRequest,
    ListApplicationsRequest, ListApplicationsResponse, ListComponentsRequest, ListComponentsResponse, Model,
    OpenBuildRequest, UpdateApplicationRequest, UpdateApplicationResponse, UpdateComponentRequest,
    UpdateComponentResponse, application_service_server::ApplicationService,
    build_record_service_client::BuildRecordServiceClient, model_service_client::ModelServiceClient,
};
use serde_json::{Value, json};
use tonic::{Code, Request, Response, Status, metadata::MetadataMap};

use crate::{
    seeding,
    typed::{KindRecords, Record, on_behalf, text, time},
    workflows::{Started, Workflows},
};

/// The port a generated service listens on when the application names none.
pub const DEFAULT_PORT: i32 = 8080;
/// The template set an application renders when it names none.
pub const DEFAULT_TEMPLATE_SET: &str = "rust-axum";
/// The seeded workflow that queues builds.
pub const BUILD_WORKFLOW: &str = "workflow:build-application";
/// Most models one application includes, and most templates one set holds.
const MAX_MODELS: usize = 100;
pub const MAX_TEMPLATES: usize = 500;
/// Most components listed with an application.
const MAX_COMPONENTS: usize = 500;

#[derive(Clone)]
pub struct ApplicationApi {
    pub records: KindRecords,
    pub auth: Authenticator,
    pub db: Db,
    /// model-svc, asked for the application's models with the caller's token.
    pub model: GrpcChannel,
    /// build-worker, where builds are opened.
    pub build: GrpcChannel,
    pub workflows: Workflows,
}

/// An application's slug from its name: lower-case letters, digits and `-`, usable as a
/// URL segment and an image repository name.
pub fn slug_of(name: &str) -> Result<String, ServiceError> {
    let normalised = names::normalise(name).map_err(|e| ServiceError::invalid_field("name", e.to_string()))?;
    let slug: String = normalised.replace('_', "-").chars().take(63).collect();
    match slug.chars().next() {
        Some(c) if c.is_ascii_alphanumeric() => Ok(slug.trim_end_matches('-').to_string()),
        _ => Err(ServiceError::invalid_field("name", "must start with a letter or digit")),
    }
}

/// Why `slug` cannot name an application's image, if it cannot.
pub fn slug_error(slug: &str) -> Option<String> {
    let valid = slug.len() <= 63
        && slug.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.ends_with('-');
    (!valid).then(|| "must be lower-case letters, digits and `-`, starting with a letter or digit".into())
}

fn config_json(config: Option<ApplicationConfig>) -> Value {
    let config = config.unwrap_or_default();
    json!({
        "build_args": config.build_args,
        "port": if config.port == 0 { DEFAULT_PORT } else { config.port },
        "env": config.env,
    })
}

fn config_of(value: Option<&Value>) -> ApplicationConfig {
    let strings = |field: &str| -> HashMap<String, String> {
        value
            .and_then(|config| config.get(field))
            .and_then(Value::as_object)
            .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default()
    };
    let port = value.and_then(|config| config.get("port")).and_then(Value::as_i64).and_then(|p| i32::try_from(p).ok());
    ApplicationConfig { build_args: strings("build_args"), port: port.unwrap_or(DEFAULT_PORT), env: strings("env") }
}

fn application_of(record: &Record, components: Vec<Component>) -> Application {
    let model_ids = record
        .get("model_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let template_set = match text(record, "template_set") {
        set if set.is_empty() => DEFAULT_TEMPLATE_SET.to_string(),
        set => set,
    };
    Application {
        id: text(record, "id"),
        name: text(record, "name"),
        slug: text(record, "slug"),
        description: text(record, "description"),
        model_ids,
        template_set,
        config: Some(config_of(record.get("config"))),
        components,
        created_at: time(record, "created_at"),
        updated_at: time(record, "updated_at"),
    }
}

fn component_of(record: &Record) -> Component {
    Component {
        id: text(record, "id"),
        application_id: text(record, "application"),
        name: text(record, "name"),
        kind: text(record, "kind"),
        props: record.get("props").and_then(|props| serde_json::from_value(props.clone()).ok()),
        created_at: time(record, "created_at"),
        updated_at: time(record, "updated_at"),
    }
}

/// What an application's record holds, from a create or update request.
struct ApplicationFields {
    name: String,
    description: String,
    model_ids: Vec<String>,
    template_set: String,
    config: Option<ApplicationConfig>,
}

/// The editable fields of a create or update request, which name them alike.
macro_rules! application_fields {
    ($request:expr) => {{
        let request = $request;
        ApplicationFields {
            name: request.name,
            description: request.description,
            model_ids: request.model_ids,
            template_set: request.template_set,
            config: request.config,
        }
    }};
}

impl ApplicationFields {
    fn record(self) -> Result<Record, ServiceError> {
        let slug = slug_of(&self.name)?;
        let template_set = if self.template_set.is_empty() { DEFAULT_TEMPLATE_SET.into() } else { self.template_set };
        let record = json!({
            "name": self.name,
            "slug": slug,
            "description": self.description,
            "model_ids": self.model_ids,
            "template_set": template_set,
            "config": config_json(self.config),
        });
        Ok(record.as_object().cloned().unwrap_or_default())
    }
}

impl ApplicationApi {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.auth.authenticate(request.metadata()).await?)
    }

    /// The models `ids` names, each as model-svc has it now; INVALID_ARGUMENT on
    /// `field` naming those that do not exist.
    async fn models(&self, metadata: &MetadataMap, ids: &[String], field: &str) -> Result<Vec<Model>, Status> {
        if ids.len() > MAX_MODELS {
            return Err(ServiceError::invalid_field(field, format!("at most {MAX_MODELS} models")).into());
        }
        let mut client = ModelServiceClient::new(self.model.clone());
        let (mut models, mut missing) = (Vec::new(), Vec::new());
        for id in ids {
            match client.get_model(on_behalf(metadata, GetModelRequest { id: id.clone() })).await {
                Ok(response) => models.extend(response.into_inner().model),
                Err(status) if status.code() == Code::NotFound => missing.push(id.as_str()),
                Err(status) => return Err(status),
            }
        }
        if !missing.is_empty() {
            let why = format!("no such models in this workspace: {}", missing.join(", "));
            return Err(ServiceError::invalid(vec![FieldViolation::new(field, why)]).into());
        }
        Ok(models)
    }

    async fn components(&self, caller: Principal, application: &str) -> Result<Vec<Component>, ServiceError> {
        let records = self.records.all(caller, "components", &[("application", application)], MAX_COMPONENTS).await?;
        Ok(records.iter().map(component_of).collect())
    }

    async fn application(&self, caller: Principal, id: &str) -> Result<Application, ServiceError> {
        let record = self.records.get(caller, "applications", id).await?;
        let components = self.components(caller, id).await?;
        Ok(application_of(&record, components))
    }

    /// What a build of `application` renders: the application, its models as they are
    /// now, and its template set.
    pub async fn build_inputs(
        &self,
        caller: Principal,
        metadata: &MetadataMap,
        application: &Application,
        with_templates: bool,
    ) -> Result<Value, Status> {
        let models = self.models(metadata, &application.model_ids, "model_ids").await.map_err(|status| {
            if status.code() == Code::InvalidArgument {
                Status::failed_precondition(format!(
                    "the application names models that were deleted: {}",
                    status.message()
                ))
            } else {
                status
            }
        })?;
        let mut inputs = json!({
            "application": serde_json::to_value(application).map_err(|e| Status::internal(e.to_string()))?,
            "models": serde_json::to_value(&models).map_err(|e| Status::internal(e.to_string()))?,
        });
        if with_templates {
            let filter = [("set", application.template_set.as_str())];
            let templates = self.records.all(caller, "templates", &filter, MAX_TEMPLATES).await?;
            if templates.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "template set `{}` has no templates in this workspace",
                    application.template_set
                )));
            }
            inputs["templates"] = Value::Array(templates.into_iter().map(Value::Object).collect());
        }
        Ok(inputs)
    }
}

#[tonic::async_trait]
impl ApplicationService for ApplicationApi {
    async fn list_applications(
        &self,
        request: Request<ListApplicationsRequest>,
    ) -> Result<Response<ListApplicationsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let page = (request.page_size, request.page_token.as_str());
        let (records, next_page_token) = self.records.list(caller, "applications", page, "-created_at", &[]).await?;
        let applications = records.iter().map(|record| application_of(record, Vec::new())).collect();
        Ok(Response::new(ListApplicationsResponse { applications, next_page_token }))
    }

    async fn get_application(
        &self,
        request: Request<GetApplicationRequest>,
    ) -> Result<Response<GetApplicationResponse>, Status> {
        let caller = self.caller(&request).await?;
        let application = self.application(caller, &request.get_ref().id).await?;
        Ok(Response::new(GetApplicationResponse { application: Some(application) }))
    }

    async fn create_application(
        &self,
        request: Request<CreateApplicationRequest>,
    ) -> Result<Response<CreateApplicationResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.models(request.metadata(), &request.get_ref().model_ids, "model_ids").await?;
        let fields = application_fields!(request.into_inner());
        let record = self.records.create(caller, "applications", fields.record()?).await?;
        Ok(Response::new(CreateApplicationResponse { application: Some(application_of(&record, Vec::new())) }))
    }

    async fn update_application(
        &self,
        request: Request<UpdateApplicationRequest>,
    ) -> Result<Response<UpdateApplicationResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.models(request.metadata(), &request.get_ref().model_ids, "model_ids").await?;
        let request = request.into_inner();
        let id = request.id.clone();
        let fields = application_fields!(request);
        self.records.update(caller, "applications", &id, fields.record()?, false).await?;
        let application = self.application(caller, &id).await?;
        Ok(Response::new(UpdateApplicationResponse { application: Some(application) }))
    }

    async fn delete_application(
        &self,
        request: Request<DeleteApplicationRequest>,
    ) -> Result<Response<DeleteApplicationResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.records.delete(caller, "applications", &request.get_ref().id).await?;
        Ok(Response::new(DeleteApplicationResponse {}))
    }

    async fn generate_application(
        &self,
        request: Request<GenerateApplicationRequest>,
    ) -> Result<Response<GenerateApplicationResponse>, Status> {
        let caller = self.caller(&request).await?;
        let metadata = request.metadata().clone();
        let application = self.application(caller, &request.get_ref().id).await?;
        let workflow = seeding::seeded_item(&self.db, caller.workspace_id, BUILD_WORKFLOW)
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| {
                Status::failed_precondition(
                    "this workspace has no build workflow (`build-application`); it was deleted",
                )
            })?;
        let inputs = self.build_inputs(caller, &metadata, &application, true).await?;
        let open = OpenBuildRequest {
            application_id: application.id.clone(),
            application_slug: application.slug.clone(),
            inputs_json: inputs.to_string(),
        };
        let mut builds = BuildRecordServiceClient::new(self.build.clone());
        let build = builds.open_build(on_behalf(&metadata, open)).await?.into_inner().build.unwrap_or_default();
        let input = json!({
            "build": serde_json::to_value(&build).unwrap_or_default(),
            "application": serde_json::to_value(&application).unwrap_or_default(),
            "workspace": { "id": caller.workspace_id.to_string() },
        });
        // The same engine as every run, awaited: the build is queued (or not) when this answers.
        let outcome = match self
            .workflows
            .start(caller.workspace_id, Some(caller.user_id), workflow, Started::Manual, input, None, None, true)
            .await
        {
            Ok(Some(run)) => Ok(self.workflows.finish(run).await),
            Ok(None) => Err(ServiceError::FailedPrecondition("the build workflow did not start".into())),
            Err(e) => Err(e),
        };
        let queued = match &outcome {
            Ok(run) => match &run.error {
                Some(error) => Err(format!("the build workflow failed: {error}")),
                None if run.published.iter().any(|(_, _, payload)| payload["build_id"] == json!(build.id)) => Ok(()),
                None => Err("the build workflow queued no job for this build".to_string()),
            },
            Err(error) => Err(error.to_string()),
        };
        if let Err(reason) = queued {
            abandon(&mut builds, &metadata, &build, &reason).await;
            return Err(match outcome {
                Err(ServiceError::FailedPrecondition(why)) => {
                    Status::failed_precondition(format!("the build workflow cannot run: {why}"))
                }
                Err(error) => error.into(),
                Ok(_) => Status::failed_precondition(reason),
            });
        }
        let workflow_run_id = outcome.map(|run| run.run_id.to_string()).unwrap_or_default();
        Ok(Response::new(GenerateApplicationResponse { build: Some(build), workflow_run_id }))
    }

    async fn list_components(
        &self,
        request: Request<ListComponentsRequest>,
    ) -> Result<Response<ListComponentsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        // The application must be the caller's: NOT_FOUND otherwise, not an empty list.
        self.records.get(caller, "applications", &request.application_id).await?;
        let page = (request.page_size, request.page_token.as_str());
        let filter = [("application", request.application_id.as_str())];
        let (records, next_page_token) = self.records.list(caller, "components", page, "created_at", &filter).await?;
        Ok(Response::new(ListComponentsResponse {
            components: records.iter().map(component_of).collect(),
            next_page_token,
        }))
    }

    async fn create_component(
        &self,
        request: Request<CreateComponentRequest>,
    ) -> Result<Response<CreateComponentResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        // The path names the application: another workspace's is not found.
        self.records.get(caller, "applications", &request.application_id).await?;
        let record = json!({
            "application": request.application_id,
            "name": request.name,
            "kind": request.kind,
            "props": request.props.map(|props| serde_json::to_value(props).unwrap_or_default()),
        });
        let record = self.records.create(caller, "components", record.as_object().cloned().unwrap_or_default()).await?;
        Ok(Response::new(CreateComponentResponse { component: Some(component_of(&record)) }))
    }

    async fn update_component(
        &self,
        request: Request<UpdateComponentRequest>,
    ) -> Result<Response<UpdateComponentResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let record = json!({
            "name": request.name,
            "kind": request.kind,
            "props": request.props.map(|props| serde_json::to_value(props).unwrap_or_default()),
        });
        let fields = record.as_object().cloned().unwrap_or_default();
        // The application a component belongs to does not change.
        let record = self.records.update(caller, "components", &request.id, fields, true).await?;
        Ok(Response::new(UpdateComponentResponse { component: Some(component_of(&record)) }))
    }

    async fn delete_component(
        &self,
        request: Request<DeleteComponentRequest>,
    ) -> Result<Response<DeleteComponentResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.records.delete(caller, "components", &request.get_ref().id).await?;
        Ok(Response::new(DeleteComponentResponse {}))
    }
}

/// Ends a build that could not be queued, so it does not wait for ever.
async fn abandon(
    builds: &mut BuildRecordServiceClient<GrpcChannel>,
    metadata: &MetadataMap,
    build: &Build,
    reason: &str,
) {
    let request = AbandonBuildRequest { id: build.id.clone(), reason: reason.to_string() };
    if let Err(status) = builds.abandon_build(on_behalf(metadata, request)).await {
        tracing::warn!(build = %build.id, error = %status.message(), "could not end a build that was not queued");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_image_safe() {
        assert_eq!(slug_of("Invoice Tracker").unwrap(), "invoice-tracker");
        assert_eq!(slug_of("CRM_v2").unwrap(), "crm-v2");
        assert!(slug_of("Über").is_err());
        assert!(slug_error("invoice-tracker").is_none());
        for bad in ["Invoice", "-x", "x-", "a_b", ""] {
            assert!(slug_error(bad).is_some(), "{bad}");
        }
    }
}
