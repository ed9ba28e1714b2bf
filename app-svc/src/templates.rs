//! TemplateService: code templates, typed, over the records of the `templates` kind (so
//! a body or output path that is not tera is refused here as on the generic routes, by
//! the kind's rules), and PreviewTemplate, which renders one template the way a build
//! does (`kiln_common::templating`) without building anything, and GenerateSdk, which
//! renders a set the same way into a workspace SDK (`crate::sdk`).

use kiln_common::{Authenticator, Principal, ServiceError, error::FieldViolation, templating};
use kiln_proto::v1::{
    CreateTemplateRequest, CreateTemplateResponse, DeleteTemplateRequest, DeleteTemplateResponse, GenerateSdkRequest,
    GenerateSdkResponse, GetApplicationRequest, GetTemplateRequest, GetTemplateResponse, GetTypedContractRequest,
    ListTemplatesRequest, ListTemplatesResponse, PreviewTemplateRequest, PreviewTemplateResponse, RenderedFile,
    Template, UpdateTemplateRequest, UpdateTemplateResponse, application_service_server::ApplicationService,
    model_service_client::ModelServiceClient, template_service_server::TemplateService,
};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::{
    applications::{ApplicationApi, MAX_TEMPLATES},
    sdk,
    typed::{KindRecords, Record, text, time},
};

#[derive(Clone)]
pub struct TemplateApi {
    pub records: KindRecords,
    pub auth: Authenticator,
    /// For previews against an application: its models, as a build would see them.
    pub applications: ApplicationApi,
}

fn template_of(record: &Record) -> Template {
    Template {
        id: text(record, "id"),
        set: text(record, "set"),
        name: text(record, "name"),
        output_path: text(record, "output_path"),
        body: text(record, "body"),
        scope: text(record, "scope"),
        language: text(record, "language"),
        created_at: time(record, "created_at"),
        updated_at: time(record, "updated_at"),
    }
}

fn record_of(set: String, name: String, output_path: String, body: String, scope: String, language: String) -> Record {
    let scope = if scope.is_empty() { "once".to_string() } else { scope };
    let record = json!({
        "set": set, "name": name, "output_path": output_path, "body": body, "scope": scope, "language": language,
    });
    record.as_object().cloned().unwrap_or_default()
}

impl TemplateApi {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.auth.authenticate(request.metadata()).await?)
    }
}

#[tonic::async_trait]
impl TemplateService for TemplateApi {
    async fn list_templates(
        &self,
        request: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let filter: Vec<(&str, &str)> =
            if request.set.is_empty() { Vec::new() } else { vec![("set", request.set.as_str())] };
        let page = (request.page_size, request.page_token.as_str());
        let (records, next_page_token) = self.records.list(caller, "templates", page, "created_at", &filter).await?;
        Ok(Response::new(ListTemplatesResponse {
            templates: records.iter().map(template_of).collect(),
            next_page_token,
        }))
    }

    async fn get_template(
        &self,
        request: Request<GetTemplateRequest>,
    ) -> Result<Response<GetTemplateResponse>, Status> {
        let caller = self.caller(&request).await?;
        let record = self.records.get(caller, "templates", &request.get_ref().id).await?;
        Ok(Response::new(GetTemplateResponse { template: Some(template_of(&record)) }))
    }

    async fn create_template(
        &self,
        request: Request<CreateTemplateRequest>,
    ) -> Result<Response<CreateTemplateResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let record = record_of(r.set, r.name, r.output_path, r.body, r.scope, r.language);
        let record = self.records.create(caller, "templates", record).await?;
        Ok(Response::new(CreateTemplateResponse { template: Some(template_of(&record)) }))
    }

    async fn update_template(
        &self,
        request: Request<UpdateTemplateRequest>,
    ) -> Result<Response<UpdateTemplateResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let record = record_of(r.set, r.name, r.output_path, r.body, r.scope, r.language);
        let record = self.records.update(caller, "templates", &r.id, record, false).await?;
        Ok(Response::new(UpdateTemplateResponse { template: Some(template_of(&record)) }))
    }

    async fn delete_template(
        &self,
        request: Request<DeleteTemplateRequest>,
    ) -> Result<Response<DeleteTemplateResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.records.delete(caller, "templates", &request.get_ref().id).await?;
        Ok(Response::new(DeleteTemplateResponse {}))
    }

    async fn preview_template(
        &self,
        request: Request<PreviewTemplateRequest>,
    ) -> Result<Response<PreviewTemplateResponse>, Status> {
        let caller = self.caller(&request).await?;
        let metadata = request.metadata().clone();
        let request = request.into_inner();
        let record = self.records.get(caller, "templates", &request.id).await?;
        let context = match (request.application_id.as_str(), request.context) {
            ("", Some(context)) => serde_json::to_value(context).unwrap_or_default(),
            ("", None) => {
                return Err(
                    ServiceError::invalid_field("application_id", "name an application, or give a context").into()
                );
            }
            (id, _) => {
                let get = crate::typed::on_behalf(&metadata, GetApplicationRequest { id: id.to_string() });
                let application =
                    self.applications.get_application(get).await?.into_inner().application.unwrap_or_default();
                let inputs = self.applications.build_inputs(caller, &metadata, &application, false).await?;
                templating::context(&inputs, "preview", 0)
            }
        };
        let template: templating::TemplateInput = serde_json::from_value(Value::Object(record))
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("a stored template does not read: {e}")))?;
        let files = templating::render_set(std::slice::from_ref(&template), &context).map_err(|error| {
            let field = if error.reason.starts_with("output path") { "output_path" } else { "body" };
            ServiceError::invalid(vec![FieldViolation::new(field, format!("does not render: {}", error.reason))])
        })?;
        let files = files
            .into_iter()
            .map(|file| RenderedFile { path: file.path.display().to_string(), content: file.content })
            .collect();
        Ok(Response::new(PreviewTemplateResponse { files }))
    }

    async fn generate_sdk(
        &self,
        request: Request<GenerateSdkRequest>,
    ) -> Result<Response<GenerateSdkResponse>, Status> {
        let caller = self.caller(&request).await?;
        let language = request.get_ref().language.clone();
        let set = sdk::template_set(&language)?;
        let mut models = ModelServiceClient::new(self.applications.model.clone());
        let ask = crate::typed::on_behalf(request.metadata(), GetTypedContractRequest {});
        let contract = models.get_typed_contract(ask).await?.into_inner();
        let records = self.records.all(caller, "templates", &[("set", set.as_str())], MAX_TEMPLATES).await?;
        if records.is_empty() {
            return Err(Status::failed_precondition(format!(
                "template set `{set}` has no templates in this workspace"
            )));
        }
        let templates = records
            .into_iter()
            .map(|record| serde_json::from_value(Value::Object(record)))
            .collect::<Result<Vec<templating::TemplateInput>, _>>()
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("a stored template does not read: {e}")))?;
        let context = sdk::context(&contract)?;
        let slug = context["workspace"]["slug"].as_str().unwrap_or_default().to_string();
        let root = sdk::root_of(&slug, &language);
        let file_name = format!("{root}.tar.gz");
        let (archive, paths) = tokio::task::spawn_blocking(move || sdk::render(templates, &context, &root))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(GenerateSdkResponse { file_name, archive, paths }))
    }
}
