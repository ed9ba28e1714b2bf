//! The system models' records through the same generic API as user models, stored in
//! their platform tables and kept to the caller's workspace.

use kiln_proto::v1::{ListEntitiesRequest, entity_service_client::EntityServiceClient};
use serde_json::json;

use crate::harness::{Backend, assert_error, spawn_app, token};

crate::on_every_backend!(
    applications_are_generic_records,
    system_records_stay_in_their_workspace,
    every_served_system_model_accepts_a_record,
    a_new_workspace_has_the_starter_workflow_and_templates,
    a_template_that_does_not_parse_is_refused_naming_its_line,
);

/// A template is saved only if its body and output path parse as tera (the builds render
/// them later, far from the edit): otherwise a 400 naming the field, line and column.
async fn a_template_that_does_not_parse_is_refused_naming_its_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let template = |body: &str, output_path: &str| json!({ "set": "mine", "name": "Model", "scope": "per_model", "body": body, "output_path": output_path });
    let (status, body) =
        app.post_with_token("/api/v1/templates", &access, template("struct A;\n{{ model.singular ", "src/a.rs")).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "body", "{body}");
    assert!(error["details"][0]["description"].as_str().unwrap().contains("line 2, column"), "{body}");

    let good = template("pub struct {{ model.name }};", "src/{{ model.singular }}.rs");
    let (status, created) = app.post_with_token("/api/v1/templates", &access, good).await;
    assert_eq!(status, 201, "{created}");
    let id = created["record"]["id"].as_str().unwrap();
    let (status, body) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/templates/{id}"),
            &access,
            Some(json!({ "output_path": "src/{% if %}.rs" })),
        )
        .await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "output_path", "{body}");
    let (_, stored) = app.get_with_token(&format!("/api/v1/templates/{id}"), &access).await;
    assert_eq!(stored["record"]["output_path"], "src/{{ model.singular }}.rs", "the refused change left it as it was");
    app.stop().await;
}

async fn a_new_workspace_has_the_starter_workflow_and_templates(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let (_, workflows) = app.get_with_token("/api/workflows", &access).await;
    let workflows = workflows["records"].as_array().unwrap().clone();
    assert_eq!(workflows.len(), 1);
    assert_eq!(workflows[0]["name"], "Export/Build Application");
    assert_eq!(workflows[0]["actions"][0]["kind"], "publish_event");
    let (_, templates) = app.get_with_token("/api/templates?set=rust-axum", &access).await;
    assert_eq!(templates["records"].as_array().unwrap().len(), kiln_common::seeds::starter_templates().unwrap().len());

    // Seeding again adds nothing; a starter item the user deleted stays deleted.
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    let id = workflows[0]["id"].as_str().unwrap();
    assert_eq!(app.send(reqwest::Method::DELETE, &format!("/api/workflows/{id}"), &access, None).await.0, 204);
    assert_eq!(kiln_app_svc::seeding::seed_workspace(&app.db, workspace).await.unwrap(), 0);
    let (_, workflows) = app.get_with_token("/api/workflows", &access).await;
    assert!(workflows["records"].as_array().unwrap().is_empty());
    app.stop().await;
}

async fn applications_are_generic_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let shop = json!({ "name": "Shop", "slug": "shop", "model_ids": [], "template_set": "rust-axum", "config": { "port": 8080 } });
    let (status, created) = app.post_with_token("/api/applications", &access, shop.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["record"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["record"]["config"], json!({ "port": 8080 }));

    let (status, list) = app.get_with_token("/api/v1/applications", &access).await;
    assert_eq!(status, 200);
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
    let (status, body) = app.post_with_token("/api/applications", &access, shop).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "slug");
    let (status, patched) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/applications/{id}"),
            &access,
            Some(json!({ "description": "web shop" })),
        )
        .await;
    assert_eq!((status, &patched["record"]["description"]), (200, &json!("web shop")));
    let (status, body) = app.post_with_token("/api/applications", &access, json!({ "slug": "x" })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "name");

    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/applications/{id}"), &access, None).await;
    assert_eq!(status, 204);
    // Kinds with an API of their own are not written through the generic one: users
    // (app-svc's) and models (model-svc's, reachable here only over gRPC).
    let (status, body) = app.get_with_token("/api/users", &access).await;
    let error = assert_error(status, &body, 409, "failed_precondition");
    assert!(error["message"].as_str().unwrap().contains("/api/v1/auth/profile"), "{body}");
    // However the kind is spelled.
    let (status, body) = app.get_with_token("/api/Users", &access).await;
    assert_error(status, &body, 409, "failed_precondition");
    let mut entities = EntityServiceClient::new(crate::grpc::channel(app.addr).await);
    let listing = |model: &str, token: &str| {
        crate::grpc::with_token(ListEntitiesRequest { model: model.into(), ..Default::default() }, token)
    };
    let refused = entities.list_entities(listing("models", &access)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("/api/v1/models"), "{refused:?}");
    // Whoever answers for a kind checks the caller.
    for model in ["applications", "models", "invoices"] {
        let refused = entities.list_entities(listing(model, "not-a-token")).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{model}: {refused:?}");
    }
    app.stop().await;
}

async fn system_records_stay_in_their_workspace(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = token(&app.register("ada@example.com").await, "access_token");
    let eve = token(&app.register("eve@example.com").await, "access_token");
    let (_, created) = app.post_with_token("/api/applications", &ada, json!({ "name": "Shop", "slug": "shop" })).await;
    let id = created["record"]["id"].as_str().unwrap().to_string();

    let (_, list) = app.get_with_token("/api/applications", &eve).await;
    assert!(list["records"].as_array().unwrap().is_empty());
    let (_, list) = app.get_with_token(&format!("/api/applications?id={id}"), &eve).await;
    assert!(list["records"].as_array().unwrap().is_empty());
    for (method, body) in [
        (reqwest::Method::GET, None),
        (reqwest::Method::PATCH, Some(json!({ "name": "Mine" }))),
        (reqwest::Method::PUT, Some(json!({ "name": "Mine", "slug": "mine" }))),
        (reqwest::Method::DELETE, None),
    ] {
        let (status, body) = app.send(method.clone(), &format!("/api/applications/{id}"), &eve, body).await;
        assert_error(status, &body, 404, "not_found");
    }
    // Eve may use the same slug in her workspace, but not point at Ada's application.
    assert_eq!(app.post_with_token("/api/applications", &eve, json!({ "name": "Shop", "slug": "shop" })).await.0, 201);
    let component = json!({ "application": id, "name": "List", "kind": "list" });
    let (status, body) = app.post_with_token("/api/components", &eve, component.clone()).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "application");
    assert_eq!(app.post_with_token("/api/components", &ada, component).await.0, 201);

    let (status, still) = app.get_with_token(&format!("/api/applications/{id}"), &ada).await;
    assert_eq!((status, &still["record"]["name"]), (200, &json!("Shop")));
    app.stop().await;
}

async fn every_served_system_model_accepts_a_record(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let (_, application) =
        app.post_with_token("/api/applications", &access, json!({ "name": "Shop", "slug": "shop" })).await;
    let application = application["record"]["id"].clone();
    let samples = [
        (
            "components",
            json!({ "application": application, "name": "Orders", "kind": "list", "props": { "model": "orders" } }),
        ),
        (
            "templates",
            json!({ "set": "rust-axum", "name": "main", "output_path": "src/main.rs", "body": "fn main() {}", "scope": "once", "language": "rust" }),
        ),
        (
            "workflows",
            json!({ "name": "Build", "trigger": { "kind": "manual" }, "actions": [{ "kind": "publish_event" }], "enabled": true }),
        ),
        (
            "prompts",
            json!({ "name": "Describe", "category": "docs", "type": "llm", "content": "Describe {{ model }}", "variables": ["model"], "current_version": 1 }),
        ),
    ];
    for (plural, record) in samples {
        let (status, body) = app.post_with_token(&format!("/api/{plural}"), &access, record.clone()).await;
        assert_eq!(status, 201, "{plural}: {body}");
        for (field, value) in record.as_object().unwrap() {
            assert_eq!(&body["record"][field], value, "{plural}.{field}");
        }
        let id = body["record"]["id"].as_str().unwrap();
        let (status, list) = app.get_with_token(&format!("/api/{plural}?sort=-created_at&id={id}"), &access).await;
        assert_eq!((status, list["records"].as_array().unwrap().len()), (200, 1), "{plural}");
    }
    let (status, body) = app
        .post_with_token(
            "/api/components",
            &access,
            json!({ "application": application, "name": "x", "kind": "carousel" }),
        )
        .await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "kind");
    app.stop().await;
}
