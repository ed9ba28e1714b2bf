//! Tenant isolation, as a matrix: user B calls every REST route of the OpenAPI document and
//! every gRPC method reflection lists, aimed at user A's models, records, applications,
//! templates, workflows, prompts and components — by id, slug, plural, filter, page token
//! and relation — on SQLite, on PostgreSQL and through the mesh. Calls aimed at A's things
//! answer 403 or 404; calls on B's own collections carrying A's values answer without any
//! of A's data; no answer, error or not, carries anything of A's that B did not send.

use std::collections::{BTreeSet, HashMap};

use kiln_common::config::Role;
use kiln_proto::v1::{
    CancelBuildRequest, CreateApplicationRequest, CreateComponentRequest, CreateEntityRequest, CreateModelRequest,
    CreateTemplateRequest, DeleteApplicationRequest, DeleteComponentRequest, DeleteDeploymentRequest,
    DeleteEntityRequest, DeleteModelRequest, DeleteTemplateRequest, Field, GenerateApplicationRequest,
    GenerateSdkRequest, GetApplicationRequest, GetBuildArtifactRequest, GetBuildQueueRequest, GetBuildRequest,
    GetEntityRequest, GetModelRequest, GetProfileRequest, GetTemplateRequest, GetTypedContractRequest,
    ImportEntitiesRequest, ListApplicationsRequest, ListAuditEventsRequest, ListBuildsRequest, ListComponentsRequest,
    ListDeploymentsRequest, ListEntitiesRequest, ListModelVersionsRequest, ListModelsRequest, ListTemplatesRequest,
    LoginRequest, LogoutRequest, PlanModelChangeRequest, PreviewTemplateRequest, RefreshRequest, RegisterRequest,
    Relation, RunBuildRequest, UpdateApplicationRequest, UpdateComponentRequest, UpdateEntityRequest,
    UpdateModelRequest, UpdateProfileRequest, UpdateTemplateRequest, WatchBuildRequest, WatchEntitiesRequest,
    application_service_client::ApplicationServiceClient, auth_service_client::AuthServiceClient,
    build_service_client::BuildServiceClient, entity_service_client::EntityServiceClient,
    model_service_client::ModelServiceClient, prompt_service_client::PromptServiceClient,
    template_service_client::TemplateServiceClient, webhook_service_client::WebhookServiceClient,
    workflow_service_client::WorkflowServiceClient,
};
use kiln_proto::v1::{
    CreatePromptRequest, CreatePromptVersionRequest, DeletePromptProviderRequest, DeletePromptRequest,
    DiffPromptVersionsRequest, GetPromptProviderRequest, GetPromptRequest, GetPromptVersionRequest,
    ListPromptTestRunsRequest, ListPromptVersionsRequest, ListPromptsRequest, PromptVariable, SetPromptProviderRequest,
    TestPromptRequest, UpdatePromptRequest,
};
use kiln_proto::v1::{
    CreateWebhookRequest, DeleteWebhookRequest, GetWebhookRequest, ListWebhookDeliveriesRequest, ListWebhooksRequest,
    RedeliverWebhookDeliveryRequest, UpdateWebhookRequest,
};
use kiln_proto::v1::{
    CreateWorkflowRequest, DeleteWorkflowRequest, ExecuteWorkflowRequest, GetWorkflowRequest, GetWorkflowRunRequest,
    ListWorkflowRunsRequest, ListWorkflowsRequest, RerunWorkflowRunRequest, Trigger, UpdateWorkflowRequest,
};
use serde_json::{Value, json};
use tonic::{Code, transport::Channel};

use crate::{
    grpc::{channel, with_token},
    harness::{Backend, PASSWORD, TestDatabase, free_address, read, send_json, spawn_app, test_config, token},
};

/// What A owns, and what of it B must never see.
struct Victim {
    /// A build of A's application.
    build_id: String,
    /// The run of A's build workflow that queued it.
    workflow_run_id: String,
    /// A's webhook subscription.
    webhook_id: String,
    model_id: String,
    record_id: String,
    owner_record_id: String,
    page_token: String,
    /// System records by plural: id.
    system: HashMap<&'static str, String>,
    refresh_token: String,
    /// Strings of A's that B never sends: none may appear in any answer to B.
    secrets: Vec<String>,
}

const SECRET_VALUE: &str = "TOP-SECRET-VALUE-7731";

/// A signs up and fills a workspace through the REST API at `base`.
async fn victim(http: &reqwest::Client, base: &str) -> Victim {
    let (status, body) = read(
        http.post(format!("{base}/api/v1/auth/register"))
            .json(&json!({ "email": "alice-secret@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let access = token(&body, "access_token");
    let post =
        |path: &str, body: Value| send_json(http, reqwest::Method::POST, format!("{base}{path}"), &access, Some(body));
    let (status, owner_model) =
        post("/api/v1/models", json!({ "name": "Vault", "fields": [{ "name": "label", "type": "text" }] })).await;
    assert_eq!(status, 201, "{owner_model}");
    let ledger = json!({ "name": "Ledger", "fields": [
        { "name": "confidential_note", "type": "text", "unique": true },
        { "name": "vault", "type": "relation", "relation": { "target": "vaults" } }
    ]});
    let (status, model) = post("/api/v1/models", ledger).await;
    assert_eq!(status, 201, "{model}");
    let (_, owner) = post("/api/vaults", json!({ "label": SECRET_VALUE })).await;
    let owner_record_id = owner["record"]["id"].as_str().unwrap().to_string();
    let mut record_id = String::new();
    for n in 0..3 {
        let (status, record) = post(
            "/api/ledgers",
            json!({ "confidential_note": format!("{SECRET_VALUE}-{n}"), "vault": owner_record_id }),
        )
        .await;
        assert_eq!(status, 201, "{record}");
        record_id = record["record"]["id"].as_str().unwrap().to_string();
    }
    let (_, page) =
        send_json(http, reqwest::Method::GET, format!("{base}/api/ledgers?page_size=1"), &access, None).await;
    let page_token = page["next_page_token"].as_str().unwrap().to_string();
    assert!(!page_token.is_empty());

    let mut system = HashMap::new();
    let (_, app) = post("/api/applications", json!({ "name": "AliceSecretApp" })).await;
    let application = app["application"]["id"].as_str().unwrap().to_string();
    for (plural, body) in [
        ("components", json!({ "application": application, "name": "AliceSecretList", "kind": "list" })),
        (
            "templates",
            json!({ "set": "alice-secret-set", "name": "AliceSecretTemplate", "output_path": "x.rs", "body": SECRET_VALUE, "scope": "once" }),
        ),
        (
            "workflows",
            json!({ "name": "AliceSecretFlow", "trigger": { "kind": "manual" }, "actions": [], "enabled": true }),
        ),
        ("prompts", json!({ "name": "AliceSecretPrompt", "category": "x", "type": "llm", "content": SECRET_VALUE })),
    ] {
        let (status, created) = post(&format!("/api/{plural}"), body).await;
        assert_eq!(status, 201, "{plural}: {created}");
        system.insert(plural, created["record"]["id"].as_str().unwrap().to_string());
    }
    let hook =
        json!({ "url": "http://alice-secret.example/hook", "events": ["entity.*"], "description": SECRET_VALUE });
    let (status, webhook) = post("/api/v1/webhooks", hook).await;
    assert_eq!(status, 201, "{webhook}");
    let generate = format!("{base}/api/v1/applications/{application}/generate");
    let (status, generated) = send_json(http, reqwest::Method::POST, generate, &access, None).await;
    assert_eq!(status, 202, "{generated}");
    system.insert("applications", application);
    let user = &body["user"];
    Victim {
        build_id: generated["build"]["id"].as_str().unwrap().to_string(),
        workflow_run_id: generated["workflow_run_id"].as_str().unwrap().to_string(),
        webhook_id: webhook["webhook"]["id"].as_str().unwrap().to_string(),
        model_id: model["model"]["id"].as_str().unwrap().to_string(),
        record_id,
        owner_record_id,
        page_token,
        system,
        refresh_token: token(&body, "refresh_token"),
        secrets: [
            "alice-secret",
            "confidential_note",
            SECRET_VALUE,
            "AliceSecret",
            "Vault",
            user["id"].as_str().unwrap(),
            user["workspace_id"].as_str().unwrap(),
        ]
        .map(str::to_string)
        .to_vec(),
    }
}

/// The empty body a call of `method` sends when it has nothing better.
fn body_of(method: &reqwest::Method) -> Option<Value> {
    (method != reqwest::Method::GET && method != reqwest::Method::DELETE).then(|| json!({}))
}

/// A record of a system kind that passes every rule, so that only ownership decides the
/// answer; relations point at A's application.
fn valid_record(plural: &str, application: &str) -> Value {
    match plural {
        "applications" => json!({ "name": "mine", "slug": "mine" }),
        "components" => json!({ "application": application, "name": "mine", "kind": "list" }),
        "templates" => json!({ "set": "mine", "name": "mine", "output_path": "a.rs", "body": "x", "scope": "once" }),
        "workflows" => json!({ "name": "mine", "trigger": { "kind": "manual" }, "actions": [], "enabled": true }),
        _ => json!({ "name": "mine", "category": "x", "type": "llm", "content": "x" }),
    }
}

fn assert_leaks_nothing(victim: &Victim, call: &str, answer: &str) {
    for secret in &victim.secrets {
        assert!(!answer.contains(secret.as_str()), "{call} leaked `{secret}`: {answer}");
    }
}

/// Every REST operation of the OpenAPI document, as B, with A's identifiers substituted.
async fn rest_matrix(http: &reqwest::Client, base: &str, victim: &Victim, b: &str) -> usize {
    let (_, doc) = read(http.get(format!("{base}/api/openapi.json")).send().await.unwrap()).await;
    let mut calls = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // (concrete path, query, body, whether the call aims at A's things)
            let mut variants: Vec<(String, String, Option<Value>, bool)> = Vec::new();
            let body = body_of(&method);
            match path.as_str() {
                p if p.starts_with("/models/{id}") => {
                    for key in [victim.model_id.as_str(), "ledger", "ledgers"] {
                        let fields = json!({ "fields": [{ "name": "x", "type": "text" }] });
                        variants.push((p.replace("{id}", key), "confirm_data_loss=true".into(), Some(fields), true));
                    }
                }
                "/{model}" => {
                    variants.push(("/ledgers".into(), String::new(), body.clone(), true));
                    let filter = format!("confidential_note={SECRET_VALUE}-0&page_token={}", victim.page_token);
                    variants.push(("/ledgers".into(), filter, body.clone(), true));
                    for plural in victim.system.keys() {
                        // B's own collection of the same kind, with A's page token and values.
                        let query = format!("page_token={}&name=AliceSecretApp", victim.page_token);
                        variants.push((format!("/{plural}"), query, None, false));
                    }
                }
                "/{model}/{id}" => {
                    let record = json!({ "confidential_note": "mine" });
                    variants.push((format!("/ledgers/{}", victim.record_id), String::new(), Some(record), true));
                    variants.push((format!("/vaults/{}", victim.owner_record_id), String::new(), body.clone(), true));
                    for (plural, id) in &victim.system {
                        // `/applications/{id}` is ApplicationService's (below), which has no PATCH.
                        if *plural == "applications" {
                            continue;
                        }
                        let body = valid_record(plural, &victim.system["applications"]);
                        variants.push((format!("/{plural}/{id}"), String::new(), Some(body), true));
                    }
                }
                "/{model}/import" => {
                    let row = json!({ "id": victim.record_id, "confidential_note": "mine" });
                    variants.push(("/ledgers/import".into(), String::new(), Some(json!({ "records": [row] })), true));
                    for (plural, id) in &victim.system {
                        // Into B's own collection of the kind, with the id of A's record:
                        // B's record under a new id, A's untouched.
                        let mut row = valid_record(plural, &victim.system["applications"]);
                        row["id"] = json!(id);
                        let rows = Some(json!({ "records": [row] }));
                        variants.push((format!("/{plural}/import"), String::new(), rows, false));
                    }
                }
                "/models" => {
                    // A relation aimed at A's model from a model of B's.
                    let model = json!({ "name": "Spy", "fields": [
                        { "name": "target", "type": "relation", "relation": { "target": "ledgers" } }
                    ]});
                    variants.push((path.clone(), "page_token=bGVkZ2Vycw".into(), Some(model), false));
                }
                p if p.starts_with("/applications/{") => {
                    let concrete = p
                        .replace("{id}", &victim.system["applications"])
                        .replace("{application_id}", &victim.system["applications"]);
                    let body = match (&method, p.ends_with("/components")) {
                        (&reqwest::Method::PUT, _) => Some(json!({ "name": "mine" })),
                        (&reqwest::Method::POST, true) => Some(json!({ "name": "mine", "kind": "list" })),
                        _ => None,
                    };
                    // Listing deployments by application is a filter (as listing builds is):
                    // B's own, none, rather than a 404.
                    let aimed = !(p.ends_with("/deployments") && method == reqwest::Method::GET);
                    variants.push((concrete, String::new(), body.or(body_of(&method)), aimed));
                }
                p if p.starts_with("/workflows/{id}") => {
                    let concrete = p.replace("{id}", &victim.system["workflows"]);
                    // Listing runs by workflow is a filter: B's own, none, rather than a 404.
                    let aimed = method != reqwest::Method::GET;
                    variants.push((concrete, String::new(), body.clone(), aimed));
                }
                p if p.starts_with("/webhooks/{id}") => {
                    variants.push((p.replace("{id}", &victim.webhook_id), String::new(), body.clone(), true));
                }
                p if p.starts_with("/prompts/{id}") => {
                    let concrete = p.replace("{id}", &victim.system["prompts"]).replace("{version}", "1");
                    variants.push((concrete, "from=1".into(), body.clone(), true));
                }
                p if p.starts_with("/webhook-deliveries/{id}") => {
                    // B cannot learn A's delivery ids; any id is not found.
                    let id = uuid::Uuid::now_v7().to_string();
                    variants.push((p.replace("{id}", &id), String::new(), body.clone(), true));
                }
                p if p.starts_with("/workflow-runs/{id}") => {
                    variants.push((p.replace("{id}", &victim.workflow_run_id), String::new(), body.clone(), true));
                }
                p if p.starts_with("/templates/{id}") => {
                    let preview = json!({ "application_id": victim.system["applications"] });
                    variants.push((p.replace("{id}", &victim.system["templates"]), String::new(), Some(preview), true));
                }
                "/sdk/{language}" => {
                    for language in ["python", "typescript"] {
                        variants.push((format!("/sdk/{language}"), String::new(), None, false));
                    }
                }
                "/auth/logout" => {
                    variants.push((
                        path.clone(),
                        String::new(),
                        Some(json!({ "refresh_token": victim.refresh_token })),
                        true,
                    ));
                }
                "/auth/refresh" | "/auth/login" | "/auth/register" => {
                    // Public: nothing of A's to aim at but what B would have to steal.
                    let login = json!({ "email": "alice-secret@example.com", "password": "guess 12345" });
                    variants.push((path.clone(), String::new(), Some(login), false));
                }
                _ => variants.push((path.clone(), String::new(), body.clone(), false)),
            }
            for (concrete, query, body, aimed) in variants {
                let url = format!("{base}/api/v1{concrete}?{query}");
                let (status, answer) = send_json(http, method.clone(), url, b, body).await;
                let call = format!("{method} {concrete}?{query}");
                let answer = answer.to_string();
                assert_leaks_nothing(victim, &call, &answer);
                if aimed {
                    let allowed: &[u16] = if concrete == "/auth/logout" { &[400] } else { &[404] };
                    assert!(allowed.contains(&status), "{call} answered {status}: {answer}");
                } else {
                    assert!(status < 500, "{call} answered {status}: {answer}");
                }
                calls += 1;
            }
        }
    }
    calls
}

/// A gRPC answer as text, for the leak check.
fn shown<T: std::fmt::Debug>(answer: &Result<tonic::Response<T>, tonic::Status>) -> String {
    match answer {
        Ok(response) => format!("{:?}", response.get_ref()),
        Err(status) => format!("{status:?}"),
    }
}

fn code<T>(answer: &Result<tonic::Response<T>, tonic::Status>) -> Code {
    answer.as_ref().err().map_or(Code::Ok, tonic::Status::code)
}

fn record(json: Value) -> Option<kiln_proto::wkt::Struct> {
    Some(serde_json::from_value(json).unwrap())
}

/// Every method of every service reflection lists, as B; the methods covered here must
/// be exactly those listed, so a new method fails this test until it is added.
async fn grpc_matrix(channel: Channel, victim: &Victim, b: &str) -> usize {
    let listed = crate::grpc::reflected_methods(channel.clone()).await;
    let mut models = ModelServiceClient::new(channel.clone());
    let mut entities = EntityServiceClient::new(channel.clone());
    let mut applications = ApplicationServiceClient::new(channel.clone());
    let mut templates = TemplateServiceClient::new(channel.clone());
    let mut builds = BuildServiceClient::new(channel.clone());
    let mut workflows = WorkflowServiceClient::new(channel.clone());
    let mut webhooks = WebhookServiceClient::new(channel.clone());
    let mut prompts = PromptServiceClient::new(channel.clone());
    let mut auth = AuthServiceClient::new(channel);
    let mut covered = BTreeSet::new();
    let mut check = |method: &str, answer: String, code: Code, allowed: &[Code]| {
        covered.insert(method.to_string());
        assert_leaks_nothing(victim, method, &answer);
        assert!(allowed.contains(&code), "{method} answered {code:?}: {answer}");
    };
    const AIMED: &[Code] = &[Code::NotFound];

    for key in [victim.model_id.as_str(), "ledger", "ledgers"] {
        let answer = models.get_model(with_token(GetModelRequest { id: key.into() }, b)).await;
        check("kiln.v1.ModelService/GetModel", shown(&answer), code(&answer), AIMED);
        let request = ListModelVersionsRequest { id: key.into(), ..Default::default() };
        let answer = models.list_model_versions(with_token(request, b)).await;
        check("kiln.v1.ModelService/ListModelVersions", shown(&answer), code(&answer), AIMED);
        let fields = vec![Field { name: "x".into(), r#type: "text".into(), ..Default::default() }];
        let request = PlanModelChangeRequest { id: key.into(), fields: fields.clone() };
        let answer = models.plan_model_change(with_token(request, b)).await;
        check("kiln.v1.ModelService/PlanModelChange", shown(&answer), code(&answer), AIMED);
        let request = UpdateModelRequest { id: key.into(), fields, confirm_data_loss: true, ..Default::default() };
        let answer = models.update_model(with_token(request, b)).await;
        check("kiln.v1.ModelService/UpdateModel", shown(&answer), code(&answer), AIMED);
        let request = DeleteModelRequest { id: key.into(), confirm_data_loss: true };
        let answer = models.delete_model(with_token(request, b)).await;
        check("kiln.v1.ModelService/DeleteModel", shown(&answer), code(&answer), AIMED);
    }
    // B's contract: B's models only.
    let answer = models.get_typed_contract(with_token(GetTypedContractRequest {}, b)).await;
    check("kiln.v1.ModelService/GetTypedContract", shown(&answer), code(&answer), &[Code::Ok]);
    let request = ListModelsRequest { page_token: "bGVkZ2Vycw".into(), ..Default::default() };
    let answer = models.list_models(with_token(request, b)).await;
    check("kiln.v1.ModelService/ListModels", shown(&answer), code(&answer), &[Code::InvalidArgument]);
    let spy = CreateModelRequest {
        name: "Spy".into(),
        fields: vec![Field {
            name: "target".into(),
            r#type: "relation".into(),
            relation: Some(Relation { target: "ledgers".into(), ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let answer = models.create_model(with_token(spy, b)).await;
    check("kiln.v1.ModelService/CreateModel", shown(&answer), code(&answer), &[Code::InvalidArgument]);

    let mut targets: Vec<(String, String)> =
        vec![("ledgers".into(), victim.record_id.clone()), ("vaults".into(), victim.owner_record_id.clone())];
    // Watching A's models: as if B had none of that name (B's own system kinds are B's).
    for (model, _) in &targets {
        let answer = entities.watch_entities(with_token(WatchEntitiesRequest { model: model.clone() }, b)).await;
        let answer = answer.map(|watch| watch.map(|_| "a watch"));
        check("kiln.v1.EntityService/WatchEntities", shown(&answer), code(&answer), AIMED);
    }
    targets.extend(victim.system.iter().map(|(plural, id)| (plural.to_string(), id.clone())));
    for (model, id) in &targets {
        let request = GetEntityRequest { model: model.clone(), id: id.clone() };
        let answer = entities.get_entity(with_token(request, b)).await;
        check("kiln.v1.EntityService/GetEntity", shown(&answer), code(&answer), AIMED);
        let request = UpdateEntityRequest {
            model: model.clone(),
            id: id.clone(),
            record: record(valid_record(model, &victim.system["applications"])),
            partial: false,
        };
        let answer = entities.update_entity(with_token(request, b)).await;
        check("kiln.v1.EntityService/UpdateEntity", shown(&answer), code(&answer), AIMED);
        let request = DeleteEntityRequest { model: model.clone(), id: id.clone() };
        let answer = entities.delete_entity(with_token(request, b)).await;
        check("kiln.v1.EntityService/DeleteEntity", shown(&answer), code(&answer), AIMED);
        let mut filter = HashMap::new();
        filter.insert("name".to_string(), "AliceSecretApp".to_string());
        let request = ListEntitiesRequest {
            model: model.clone(),
            page_token: victim.page_token.clone(),
            filter,
            ..Default::default()
        };
        let answer = entities.list_entities(with_token(request, b)).await;
        // A's page token is not one of B's lists; A's models are not there at all.
        let allowed: &[Code] = if model == "ledgers" || model == "vaults" { AIMED } else { &[Code::InvalidArgument] };
        check("kiln.v1.EntityService/ListEntities", shown(&answer), code(&answer), allowed);
        let request = CreateEntityRequest { model: model.clone(), record: record(json!({ "spy": "x" })) };
        let answer = entities.create_entity(with_token(request, b)).await;
        let allowed: &[Code] = if model == "ledgers" || model == "vaults" { AIMED } else { &[Code::InvalidArgument] };
        check("kiln.v1.EntityService/CreateEntity", shown(&answer), code(&answer), allowed);
        let mut row = valid_record(model, &victim.system["applications"]);
        row["id"] = json!(id);
        let request = ImportEntitiesRequest {
            model: model.clone(),
            records: record(row).into_iter().collect(),
            ..Default::default()
        };
        let answer = entities.import_entities(with_token(request, b)).await;
        let allowed: &[Code] =
            if model == "ledgers" || model == "vaults" { AIMED } else { &[Code::Ok, Code::InvalidArgument] };
        check("kiln.v1.EntityService/ImportEntities", shown(&answer), code(&answer), allowed);
    }
    // A relation of B's pointing at A's record: refused without saying whether it exists.
    let component = record(json!({ "application": victim.system["applications"], "name": "spy", "kind": "list" }));
    let answer = entities
        .create_entity(with_token(CreateEntityRequest { model: "components".into(), record: component }, b))
        .await;
    check("kiln.v1.EntityService/CreateEntity", shown(&answer), code(&answer), &[Code::InvalidArgument]);

    let (application, template) = (&victim.system["applications"], &victim.system["templates"]);
    let component = &victim.system["components"];
    let answer = applications.get_application(with_token(GetApplicationRequest { id: application.clone() }, b)).await;
    check("kiln.v1.ApplicationService/GetApplication", shown(&answer), code(&answer), AIMED);
    let update = UpdateApplicationRequest { id: application.clone(), name: "mine".into(), ..Default::default() };
    let answer = applications.update_application(with_token(update, b)).await;
    check("kiln.v1.ApplicationService/UpdateApplication", shown(&answer), code(&answer), AIMED);
    let answer =
        applications.generate_application(with_token(GenerateApplicationRequest { id: application.clone() }, b)).await;
    check("kiln.v1.ApplicationService/GenerateApplication", shown(&answer), code(&answer), AIMED);
    let answer =
        applications.delete_application(with_token(DeleteApplicationRequest { id: application.clone() }, b)).await;
    check("kiln.v1.ApplicationService/DeleteApplication", shown(&answer), code(&answer), AIMED);
    let list = ListApplicationsRequest { page_token: victim.page_token.clone(), ..Default::default() };
    let answer = applications.list_applications(with_token(list, b)).await;
    check("kiln.v1.ApplicationService/ListApplications", shown(&answer), code(&answer), &[Code::InvalidArgument]);
    let create =
        CreateApplicationRequest { name: "Spy".into(), model_ids: vec![victim.model_id.clone()], ..Default::default() };
    let answer = applications.create_application(with_token(create, b)).await;
    check("kiln.v1.ApplicationService/CreateApplication", shown(&answer), code(&answer), &[Code::InvalidArgument]);
    let list = ListComponentsRequest { application_id: application.clone(), ..Default::default() };
    let answer = applications.list_components(with_token(list, b)).await;
    check("kiln.v1.ApplicationService/ListComponents", shown(&answer), code(&answer), AIMED);
    let create = CreateComponentRequest {
        application_id: application.clone(),
        name: "spy".into(),
        kind: "list".into(),
        ..Default::default()
    };
    let answer = applications.create_component(with_token(create, b)).await;
    check("kiln.v1.ApplicationService/CreateComponent", shown(&answer), code(&answer), AIMED);
    let update =
        UpdateComponentRequest { id: component.clone(), name: "spy".into(), kind: "list".into(), ..Default::default() };
    let answer = applications.update_component(with_token(update, b)).await;
    check("kiln.v1.ApplicationService/UpdateComponent", shown(&answer), code(&answer), AIMED);
    let answer = applications.delete_component(with_token(DeleteComponentRequest { id: component.clone() }, b)).await;
    check("kiln.v1.ApplicationService/DeleteComponent", shown(&answer), code(&answer), AIMED);

    let answer = templates.get_template(with_token(GetTemplateRequest { id: template.clone() }, b)).await;
    check("kiln.v1.TemplateService/GetTemplate", shown(&answer), code(&answer), AIMED);
    let fields = |id: &str| UpdateTemplateRequest {
        id: id.into(),
        set: "mine".into(),
        name: "mine".into(),
        output_path: "a.rs".into(),
        body: "x".into(),
        scope: "once".into(),
        ..Default::default()
    };
    let answer = templates.update_template(with_token(fields(template), b)).await;
    check("kiln.v1.TemplateService/UpdateTemplate", shown(&answer), code(&answer), AIMED);
    let answer = templates.delete_template(with_token(DeleteTemplateRequest { id: template.clone() }, b)).await;
    check("kiln.v1.TemplateService/DeleteTemplate", shown(&answer), code(&answer), AIMED);
    let list = ListTemplatesRequest { page_token: victim.page_token.clone(), ..Default::default() };
    let answer = templates.list_templates(with_token(list, b)).await;
    check("kiln.v1.TemplateService/ListTemplates", shown(&answer), code(&answer), &[Code::InvalidArgument]);
    let own = CreateTemplateRequest {
        set: "b-set".into(),
        name: "mine".into(),
        output_path: "a.rs".into(),
        body: "{{ application.name }}".into(),
        scope: "once".into(),
        ..Default::default()
    };
    let answer = templates.create_template(with_token(own, b)).await;
    let own = answer.as_ref().map(|r| r.get_ref().template.clone().unwrap_or_default().id).unwrap_or_default();
    check("kiln.v1.TemplateService/CreateTemplate", shown(&answer), code(&answer), &[Code::Ok]);
    // B's SDKs: B's contract only, read unpacked.
    for language in ["python", "typescript"] {
        let answer = templates.generate_sdk(with_token(GenerateSdkRequest { language: language.into() }, b)).await;
        let unpacked = match &answer {
            Ok(sdk) => format!("{:?}", crate::builds::untar(&sdk.get_ref().archive)),
            Err(status) => format!("{status:?}"),
        };
        check("kiln.v1.TemplateService/GenerateSdk", unpacked, code(&answer), &[Code::Ok]);
    }
    // A's template, and B's own template against A's application: neither is found.
    for id in [template.clone(), own] {
        let preview = PreviewTemplateRequest { id, application_id: application.clone(), context: None };
        let answer = templates.preview_template(with_token(preview, b)).await;
        check("kiln.v1.TemplateService/PreviewTemplate", shown(&answer), code(&answer), AIMED);
    }

    let workflow = victim.system["workflows"].clone();
    let answer = workflows.get_workflow(with_token(GetWorkflowRequest { id: workflow.clone() }, b)).await;
    check("kiln.v1.WorkflowService/GetWorkflow", shown(&answer), code(&answer), AIMED);
    let manual = || Some(Trigger { kind: "manual".into(), ..Default::default() });
    let update =
        UpdateWorkflowRequest { id: workflow.clone(), name: "spy".into(), trigger: manual(), ..Default::default() };
    let answer = workflows.update_workflow(with_token(update, b)).await;
    check("kiln.v1.WorkflowService/UpdateWorkflow", shown(&answer), code(&answer), AIMED);
    let answer = workflows.delete_workflow(with_token(DeleteWorkflowRequest { id: workflow.clone() }, b)).await;
    check("kiln.v1.WorkflowService/DeleteWorkflow", shown(&answer), code(&answer), AIMED);
    let execute = ExecuteWorkflowRequest { id: workflow.clone(), input: None };
    let answer = workflows.execute_workflow(with_token(execute, b)).await;
    check("kiln.v1.WorkflowService/ExecuteWorkflow", shown(&answer), code(&answer), AIMED);
    let list = ListWorkflowsRequest { page_token: victim.page_token.clone(), ..Default::default() };
    let answer = workflows.list_workflows(with_token(list, b)).await;
    check("kiln.v1.WorkflowService/ListWorkflows", shown(&answer), code(&answer), &[Code::InvalidArgument]);
    let own = CreateWorkflowRequest { name: "mine".into(), trigger: manual(), ..Default::default() };
    let answer = workflows.create_workflow(with_token(own, b)).await;
    check("kiln.v1.WorkflowService/CreateWorkflow", shown(&answer), code(&answer), &[Code::Ok]);
    // A's workflow's runs, listed in B's workspace: none.
    let list = ListWorkflowRunsRequest { id: workflow.clone(), ..Default::default() };
    let answer = workflows.list_workflow_runs(with_token(list, b)).await;
    assert!(answer.as_ref().is_ok_and(|r| r.get_ref().runs.is_empty()), "{answer:?}");
    check("kiln.v1.WorkflowService/ListWorkflowRuns", shown(&answer), code(&answer), &[Code::Ok]);
    let run = victim.workflow_run_id.clone();
    let answer = workflows.get_workflow_run(with_token(GetWorkflowRunRequest { id: run.clone() }, b)).await;
    check("kiln.v1.WorkflowService/GetWorkflowRun", shown(&answer), code(&answer), AIMED);
    let answer = workflows.rerun_workflow_run(with_token(RerunWorkflowRunRequest { id: run }, b)).await;
    check("kiln.v1.WorkflowService/RerunWorkflowRun", shown(&answer), code(&answer), AIMED);

    let webhook = victim.webhook_id.clone();
    let answer = webhooks.get_webhook(with_token(GetWebhookRequest { id: webhook.clone() }, b)).await;
    check("kiln.v1.WebhookService/GetWebhook", shown(&answer), code(&answer), AIMED);
    let update = UpdateWebhookRequest {
        id: webhook.clone(),
        url: "http://example.com/b".into(),
        events: vec!["entity.*".into()],
        ..Default::default()
    };
    let answer = webhooks.update_webhook(with_token(update, b)).await;
    check("kiln.v1.WebhookService/UpdateWebhook", shown(&answer), code(&answer), AIMED);
    let answer = webhooks.delete_webhook(with_token(DeleteWebhookRequest { id: webhook.clone() }, b)).await;
    check("kiln.v1.WebhookService/DeleteWebhook", shown(&answer), code(&answer), AIMED);
    let list = ListWebhookDeliveriesRequest { id: webhook.clone(), ..Default::default() };
    let answer = webhooks.list_webhook_deliveries(with_token(list, b)).await;
    check("kiln.v1.WebhookService/ListWebhookDeliveries", shown(&answer), code(&answer), AIMED);
    let redeliver = RedeliverWebhookDeliveryRequest { id: uuid::Uuid::now_v7().to_string() };
    let answer = webhooks.redeliver_webhook_delivery(with_token(redeliver, b)).await;
    check("kiln.v1.WebhookService/RedeliverWebhookDelivery", shown(&answer), code(&answer), AIMED);
    let answer = webhooks.list_webhooks(with_token(ListWebhooksRequest::default(), b)).await;
    assert!(answer.as_ref().is_ok_and(|r| r.get_ref().webhooks.is_empty()), "{answer:?}");
    check("kiln.v1.WebhookService/ListWebhooks", shown(&answer), code(&answer), &[Code::Ok]);
    let own = CreateWebhookRequest {
        url: "http://example.com/b".into(),
        events: vec!["entity.created".into()],
        ..Default::default()
    };
    let answer = webhooks.create_webhook(with_token(own, b)).await;
    check("kiln.v1.WebhookService/CreateWebhook", shown(&answer), code(&answer), &[Code::Ok]);

    let prompt = victim.system["prompts"].clone();
    let answer = prompts.get_prompt(with_token(GetPromptRequest { id: prompt.clone() }, b)).await;
    check("kiln.v1.PromptService/GetPrompt", shown(&answer), code(&answer), AIMED);
    let update = UpdatePromptRequest { id: prompt.clone(), name: Some("spy".into()), ..Default::default() };
    let answer = prompts.update_prompt(with_token(update, b)).await;
    check("kiln.v1.PromptService/UpdatePrompt", shown(&answer), code(&answer), AIMED);
    let version = CreatePromptVersionRequest {
        id: prompt.clone(),
        content: "mine".into(),
        base_version: Some(1),
        ..Default::default()
    };
    let answer = prompts.create_prompt_version(with_token(version, b)).await;
    check("kiln.v1.PromptService/CreatePromptVersion", shown(&answer), code(&answer), AIMED);
    let list = ListPromptVersionsRequest { id: prompt.clone(), ..Default::default() };
    let answer = prompts.list_prompt_versions(with_token(list, b)).await;
    check("kiln.v1.PromptService/ListPromptVersions", shown(&answer), code(&answer), AIMED);
    let one = GetPromptVersionRequest { id: prompt.clone(), version: 1 };
    let answer = prompts.get_prompt_version(with_token(one, b)).await;
    check("kiln.v1.PromptService/GetPromptVersion", shown(&answer), code(&answer), AIMED);
    let diff = DiffPromptVersionsRequest { id: prompt.clone(), from: 1, to: 0 };
    let answer = prompts.diff_prompt_versions(with_token(diff, b)).await;
    check("kiln.v1.PromptService/DiffPromptVersions", shown(&answer), code(&answer), AIMED);
    let test = TestPromptRequest { id: prompt.clone(), ..Default::default() };
    let answer = prompts.test_prompt(with_token(test, b)).await;
    check("kiln.v1.PromptService/TestPrompt", shown(&answer), code(&answer), AIMED);
    let runs = ListPromptTestRunsRequest { id: prompt.clone(), ..Default::default() };
    let answer = prompts.list_prompt_test_runs(with_token(runs, b)).await;
    check("kiln.v1.PromptService/ListPromptTestRuns", shown(&answer), code(&answer), AIMED);
    let answer = prompts.delete_prompt(with_token(DeletePromptRequest { id: prompt.clone() }, b)).await;
    check("kiln.v1.PromptService/DeletePrompt", shown(&answer), code(&answer), AIMED);
    let list = ListPromptsRequest { page_token: victim.page_token.clone(), ..Default::default() };
    let answer = prompts.list_prompts(with_token(list, b)).await;
    check("kiln.v1.PromptService/ListPrompts", shown(&answer), code(&answer), &[Code::InvalidArgument]);
    let own = CreatePromptRequest {
        name: "mine".into(),
        r#type: "llm".into(),
        content: "Hello {{ who }}".into(),
        variables: vec![PromptVariable { name: "who".into(), required: true, ..Default::default() }],
        ..Default::default()
    };
    let answer = prompts.create_prompt(with_token(own, b)).await;
    check("kiln.v1.PromptService/CreatePrompt", shown(&answer), code(&answer), &[Code::Ok]);
    // The provider is the caller's workspace's: B's own, none.
    let answer = prompts.get_prompt_provider(with_token(GetPromptProviderRequest {}, b)).await;
    assert!(answer.as_ref().is_ok_and(|r| r.get_ref().provider.is_none()), "{answer:?}");
    check("kiln.v1.PromptService/GetPromptProvider", shown(&answer), code(&answer), &[Code::Ok]);
    let answer = prompts.delete_prompt_provider(with_token(DeletePromptProviderRequest {}, b)).await;
    check("kiln.v1.PromptService/DeletePromptProvider", shown(&answer), code(&answer), AIMED);
    let set = SetPromptProviderRequest { url: "http://llm.example/v1".into(), model: "m".into(), key: None };
    let answer = prompts.set_prompt_provider(with_token(set, b)).await;
    check("kiln.v1.PromptService/SetPromptProvider", shown(&answer), code(&answer), &[Code::Ok]);

    let build = victim.build_id.clone();
    let answer = builds.get_build(with_token(GetBuildRequest { id: build.clone() }, b)).await;
    check("kiln.v1.BuildService/GetBuild", shown(&answer), code(&answer), AIMED);
    let answer = builds.cancel_build(with_token(CancelBuildRequest { id: build.clone() }, b)).await;
    check("kiln.v1.BuildService/CancelBuild", shown(&answer), code(&answer), AIMED);
    let answer = builds.watch_build(with_token(WatchBuildRequest { id: build.clone(), after_sequence: 0 }, b)).await;
    check("kiln.v1.BuildService/WatchBuild", format!("{:?}", answer.as_ref().err()), code(&answer), AIMED);
    let answer = builds.get_build_artifact(with_token(GetBuildArtifactRequest { id: build.clone() }, b)).await;
    check("kiln.v1.BuildService/GetBuildArtifact", format!("{:?}", answer.as_ref().err()), code(&answer), AIMED);
    let answer = builds.run_build(with_token(RunBuildRequest { id: build.clone() }, b)).await;
    check("kiln.v1.BuildService/RunBuild", shown(&answer), code(&answer), AIMED);
    let list = ListDeploymentsRequest { application_id: application.clone() };
    let answer = builds.list_deployments(with_token(list, b)).await;
    assert!(answer.as_ref().is_ok_and(|r| r.get_ref().deployments.is_empty()), "{answer:?}");
    check("kiln.v1.BuildService/ListDeployments", shown(&answer), code(&answer), &[Code::Ok]);
    let delete = DeleteDeploymentRequest { application_id: application.clone(), id: uuid::Uuid::new_v4().to_string() };
    let answer = builds.delete_deployment(with_token(delete, b)).await;
    check("kiln.v1.BuildService/DeleteDeployment", shown(&answer), code(&answer), AIMED);
    let list = ListBuildsRequest { application_id: application.clone(), ..Default::default() };
    let answer = builds.list_builds(with_token(list, b)).await;
    assert!(answer.as_ref().is_ok_and(|r| r.get_ref().builds.is_empty()), "{answer:?}");
    check("kiln.v1.BuildService/ListBuilds", shown(&answer), code(&answer), &[Code::Ok]);
    let answer = builds.get_build_queue(with_token(GetBuildQueueRequest {}, b)).await;
    assert!(answer.as_ref().is_ok_and(|r| r.get_ref().dead_letters.is_empty()), "{answer:?}");
    check("kiln.v1.BuildService/GetBuildQueue", shown(&answer), code(&answer), &[Code::Ok]);

    let login = LoginRequest { email: "alice-secret@example.com".into(), password: "guess 12345".into() };
    let answer = auth.login(login).await;
    check("kiln.v1.AuthService/Login", shown(&answer), code(&answer), &[Code::Unauthenticated]);
    let register =
        RegisterRequest { email: "alice-secret@example.com".into(), password: PASSWORD.into(), ..Default::default() };
    let answer = auth.register(register).await;
    check("kiln.v1.AuthService/Register", shown(&answer), code(&answer), &[Code::AlreadyExists]);
    let answer = auth.refresh(RefreshRequest { refresh_token: "krt_guess".into() }).await;
    check("kiln.v1.AuthService/Refresh", shown(&answer), code(&answer), &[Code::Unauthenticated]);
    let logout = LogoutRequest { refresh_token: victim.refresh_token.clone(), everywhere: false };
    let answer = auth.logout(with_token(logout, b)).await;
    check("kiln.v1.AuthService/Logout", shown(&answer), code(&answer), &[Code::InvalidArgument]);
    let answer = auth.get_profile(with_token(GetProfileRequest {}, b)).await;
    check("kiln.v1.AuthService/GetProfile", shown(&answer), code(&answer), &[Code::Ok]);
    let update = UpdateProfileRequest { display_name: Some("b".into()), ..Default::default() };
    let answer = auth.update_profile(with_token(update, b)).await;
    check("kiln.v1.AuthService/UpdateProfile", shown(&answer), code(&answer), &[Code::Ok]);
    let answer = auth.list_audit_events(with_token(ListAuditEventsRequest::default(), b)).await;
    check("kiln.v1.AuthService/ListAuditEvents", shown(&answer), code(&answer), &[Code::Ok]);

    let kiln_methods: BTreeSet<String> = listed.into_iter().filter(|m| m.starts_with("kiln.")).collect();
    assert_eq!(covered, kiln_methods, "the matrix covers exactly the methods reflection lists");
    covered.len()
}

/// A request with `token` if any.
fn carrying<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    match token {
        Some(token) => with_token(message, token),
        None => tonic::Request::new(message),
    }
}

async fn b_signs_up(http: &reqwest::Client, base: &str) -> String {
    let (status, body) = read(
        http.post(format!("{base}/api/v1/auth/register"))
            .json(&json!({ "email": "bob@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    token(&body, "access_token")
}

crate::on_every_backend!(another_tenant_reaches_nothing_on_any_route_or_method);

async fn another_tenant_reaches_nothing_on_any_route_or_method(backend: Backend) {
    let app = spawn_app(backend).await;
    let base = app.url("");
    let victim = victim(&app.http, &base).await;
    let b = b_signs_up(&app.http, &base).await;
    let rest = rest_matrix(&app.http, &base, &victim, &b).await;
    let grpc = grpc_matrix(channel(app.addr).await, &victim, &b).await;
    assert!(rest > 40 && grpc >= 14, "{rest} REST calls, {grpc} gRPC methods");
    app.stop().await;
}

#[tokio::test]
async fn another_tenant_reaches_nothing_through_the_mesh_and_roles_refuse_callers_without_a_token() {
    let database = TestDatabase::new(Backend::Postgres);
    let (build_addr, model_addr) = (free_address(), free_address());
    let mut app_config = test_config(Role::App, &database);
    app_config.build_worker_url = format!("http://{build_addr}");
    app_config.model_svc_url = format!("http://{model_addr}");
    let app = kiln::start(app_config).await.unwrap();
    let mut model_config = test_config(Role::Model, &database);
    (model_config.grpc_addr, model_config.app_svc_url) = (model_addr, format!("http://{}", app.grpc_addr.unwrap()));
    let model = kiln::start(model_config).await.unwrap();
    let mut build_config = test_config(Role::BuildWorker, &database);
    (build_config.grpc_addr, build_config.app_svc_url) = (build_addr, format!("http://{}", app.grpc_addr.unwrap()));
    let build = kiln::start(build_config).await.unwrap();
    let mut gateway_config = test_config(Role::Gateway, &database);
    gateway_config.model_svc_url = format!("http://{}", model.grpc_addr.unwrap());
    gateway_config.app_svc_url = format!("http://{}", app.grpc_addr.unwrap());
    gateway_config.build_worker_url = format!("http://{build_addr}");
    let gateway = kiln::start(gateway_config).await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}", gateway.http_addr.unwrap());
    let victim = victim(&http, &base).await;
    let b = b_signs_up(&http, &base).await;
    rest_matrix(&http, &base, &victim, &b).await;
    grpc_matrix(channel(gateway.http_addr.unwrap()).await, &victim, &b).await;

    // Straight to the roles' own ports: B is still B, and no token is no entry.
    let direct = channel(model.grpc_addr.unwrap()).await;
    let mut models = ModelServiceClient::new(direct.clone());
    let mut entities = EntityServiceClient::new(direct);
    let answer = models.get_model(with_token(GetModelRequest { id: "ledgers".into() }, &b)).await;
    assert_eq!(code(&answer), Code::NotFound);
    assert_leaks_nothing(&victim, "direct GetModel", &shown(&answer));
    for token in [None, Some("not-a-token"), Some("eyJhbGciOiJub25lIn0.e30.")] {
        assert_eq!(
            code(&models.list_models(carrying(ListModelsRequest::default(), token)).await),
            Code::Unauthenticated
        );
        let request = GetEntityRequest { model: "ledgers".into(), id: victim.record_id.clone() };
        assert_eq!(code(&entities.get_entity(carrying(request, token)).await), Code::Unauthenticated);
        let mut auth = AuthServiceClient::new(channel(app.grpc_addr.unwrap()).await);
        assert_eq!(code(&auth.get_profile(carrying(GetProfileRequest {}, token)).await), Code::Unauthenticated);
        assert_eq!(
            code(&auth.list_audit_events(carrying(ListAuditEventsRequest::default(), token)).await),
            Code::Unauthenticated
        );
    }
    for running in [gateway, model, build, app] {
        running.stop().await.unwrap();
    }
}
