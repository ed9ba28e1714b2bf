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
    seeded_items_nobody_changed_follow_newer_seeds,
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
    let starters = kiln_common::seeds::starter_templates().unwrap().iter().filter(|t| t.set == "rust-axum").count();
    assert_eq!(templates["records"].as_array().unwrap().len(), starters);

    // Seeding again adds nothing; a starter item the user deleted stays deleted.
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    let id = workflows[0]["id"].as_str().unwrap();
    assert_eq!(app.send(reqwest::Method::DELETE, &format!("/api/workflows/{id}"), &access, None).await.0, 204);
    assert!(!kiln_app_svc::seeding::seed_workspace(&app.db, workspace).await.unwrap().changed());
    let (_, workflows) = app.get_with_token("/api/workflows", &access).await;
    assert!(workflows["records"].as_array().unwrap().is_empty());
    app.stop().await;
}

/// Applications have their own service (and `/applications` routes), and stay records
/// of the `applications` kind: EntityService reads and writes the same rows, under the
/// same rules.
async fn applications_are_generic_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let (status, created) = app.post_with_token("/api/applications", &access, json!({ "name": "Web Shop" })).await;
    assert_eq!(status, 201, "{created}");
    let application = &created["application"];
    assert_eq!((&application["slug"], &application["template_set"]), (&json!("web-shop"), &json!("rust-axum")));
    assert_eq!(application["config"]["port"], 8080);
    let id = application["id"].as_str().unwrap().to_string();
    let (status, body) = app.post_with_token("/api/applications", &access, json!({ "name": "Web shop" })).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "slug");
    let (status, body) = app.post_with_token("/api/applications", &access, json!({ "name": "" })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "name");
    let (status, body) =
        app.post_with_token("/api/applications", &access, json!({ "name": "X", "model_ids": ["nope"] })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "model_ids", "{body}");

    let mut entities = EntityServiceClient::new(crate::grpc::channel(app.addr).await);
    let record = |fields: serde_json::Value| serde_json::from_value::<kiln_proto::wkt::Struct>(fields).unwrap();
    let update = kiln_proto::v1::UpdateEntityRequest {
        model: "applications".into(),
        id: id.clone(),
        record: Some(record(json!({ "description": "web shop" }))),
        partial: true,
    };
    entities.update_entity(crate::grpc::with_token(update, &access)).await.unwrap();
    let (status, got) = app.get_with_token(&format!("/api/applications/{id}"), &access).await;
    assert_eq!((status, &got["application"]["description"]), (200, &json!("web shop")));
    // The kind's rules hold on the generic path too: a slug must name an image.
    let bad = kiln_proto::v1::CreateEntityRequest {
        model: "applications".into(),
        record: Some(record(json!({ "name": "Y", "slug": "Not An Image" }))),
    };
    let refused = entities.create_entity(crate::grpc::with_token(bad, &access)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert_eq!(kiln_common::error::field_violations(&refused)[0].field, "slug");

    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/applications/{id}"), &access, None).await;
    assert_eq!(status, 204);
    let (status, list) = app.get_with_token("/api/v1/applications", &access).await;
    assert_eq!((status, list["applications"].as_array().map(Vec::len)), (200, Some(0)), "{list}");
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
    let (_, created) = app.post_with_token("/api/applications", &ada, json!({ "name": "Shop" })).await;
    let id = created["application"]["id"].as_str().unwrap().to_string();

    let (_, list) = app.get_with_token("/api/applications", &eve).await;
    assert_eq!(list["applications"], json!([]), "{list}");
    let (_, list) = app.get_with_token(&format!("/api/components?application={id}"), &eve).await;
    assert!(list["records"].as_array().unwrap().is_empty());
    for (method, body) in [
        (reqwest::Method::GET, None),
        (reqwest::Method::PUT, Some(json!({ "name": "Mine" }))),
        (reqwest::Method::DELETE, None),
        (reqwest::Method::POST, None),
    ] {
        let path = if method == reqwest::Method::POST {
            format!("/api/applications/{id}/generate")
        } else {
            format!("/api/applications/{id}")
        };
        let (status, body) = app.send(method.clone(), &path, &eve, body).await;
        assert_error(status, &body, 404, "not_found");
    }
    // Eve may use the same slug in her workspace, but not point at Ada's application.
    assert_eq!(app.post_with_token("/api/applications", &eve, json!({ "name": "Shop" })).await.0, 201);
    let component = json!({ "application": id, "name": "List", "kind": "list" });
    let (status, body) = app.post_with_token("/api/components", &eve, component.clone()).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "application");
    assert_eq!(app.post_with_token("/api/components", &ada, component).await.0, 201);

    let (status, still) = app.get_with_token(&format!("/api/applications/{id}"), &ada).await;
    assert_eq!((status, &still["application"]["name"]), (200, &json!("Shop")));
    assert_eq!(still["application"]["components"].as_array().map(Vec::len), Some(1), "{still}");
    app.stop().await;
}

async fn every_served_system_model_accepts_a_record(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let (_, application) = app.post_with_token("/api/applications", &access, json!({ "name": "Shop" })).await;
    let application = application["application"]["id"].clone();
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
            json!({ "name": "Build", "trigger": { "kind": "manual" }, "actions": [{ "name": "queue", "kind": "publish_event", "config": { "queue": "app_builds" } }], "enabled": true }),
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

/// A workspace seeded by an older release takes the current seeds' content for the
/// seeded items nobody changed, loses those the seeds dropped, and keeps every item a
/// user changed as it is.
async fn seeded_items_nobody_changed_follow_newer_seeds(backend: Backend) {
    use kiln_common::{db::Id, seeds, with_db};
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    let template_id = |key: &str| {
        let db = app.db.clone();
        let key = format!("template:rust-axum/{key}");
        async move { kiln_app_svc::seeding::seeded_item(&db, workspace, &key).await.unwrap().unwrap() }
    };
    let (main, readme, dockerfile) =
        (template_id("main").await, template_id("readme").await, template_id("dockerfile").await);

    // What an older release left: old content in rows nobody edited since (updated_at
    // untouched), one of them seeded before rows were remembered, and two items the
    // current seeds no longer have, one of which the user then edited.
    let (dropped, dropped_but_edited) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    with_db!(&app.db, pool => {
        sqlx::query("UPDATE templates SET body = 'fn main() {}' WHERE id = $1").bind(Id(main)).execute(pool).await.unwrap();
        sqlx::query("UPDATE templates SET body = '# old' WHERE id = $1").bind(Id(readme)).execute(pool).await.unwrap();
        sqlx::query("UPDATE seed_items SET item_id = NULL WHERE item_key = 'template:rust-axum/readme'").execute(pool).await.unwrap();
        sqlx::query("UPDATE workflows SET description = 'old' WHERE workspace_id = $1").bind(Id(workspace)).execute(pool).await.unwrap();
        for (id, key) in [(dropped, "old-file"), (dropped_but_edited, "kept-file")] {
            sqlx::query(
                "INSERT INTO templates (id, workspace_id, created_at, updated_at, created_by, \"set\", name, output_path, body, scope, language) \
                 SELECT $1, workspace_id, created_at, updated_at, NULL, 'rust-axum', $2, $2, 'old', 'once', 'text' FROM templates WHERE id = $3",
            )
            .bind(Id(id)).bind(key).bind(Id(main)).execute(pool).await.unwrap();
            sqlx::query(
                "INSERT INTO seed_items (workspace_id, item_key, seeded_at, item_id) \
                 SELECT workspace_id, $1, seeded_at, $2 FROM seed_items WHERE item_key = 'template:rust-axum/main'",
            )
            .bind(format!("template:rust-axum/{key}")).bind(Id(id)).execute(pool).await.unwrap();
        }
        sqlx::query("UPDATE workspaces SET seed_version = 0").execute(pool).await.unwrap();
    });
    for (id, body) in [(dockerfile, "FROM scratch\n"), (dropped_but_edited, "mine")] {
        let (status, body) = app
            .send(reqwest::Method::PATCH, &format!("/api/v1/templates/{id}"), &access, Some(json!({ "body": body })))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    assert_eq!(kiln_app_svc::seeding::upgrade_workspaces(&app.db).await.unwrap(), 1);
    let seed_body = |key: &str| {
        let seeded = seeds::starter_templates().unwrap().iter().find(|t| t.set == "rust-axum" && t.key == key);
        seeded.unwrap().body.clone()
    };
    let body_of = |id: uuid::Uuid| {
        let path = format!("/api/v1/templates/{id}");
        let app = &app;
        let access = access.clone();
        async move {
            let (status, body) = app.get_with_token(&path, &access).await;
            (status, body["record"]["body"].as_str().map(str::to_string))
        }
    };
    assert_eq!(body_of(main).await, (200, Some(seed_body("main"))), "an untouched item takes the new content");
    assert_eq!(
        body_of(readme).await,
        (200, Some(seed_body("readme"))),
        "found by name when seeded before rows were remembered"
    );
    assert_eq!(template_id("readme").await, readme, "and remembered now");
    assert_eq!(body_of(dockerfile).await, (200, Some("FROM scratch\n".to_string())), "the user's edit stays");
    assert_eq!(body_of(dropped).await.0, 404, "an untouched item the seeds dropped goes");
    assert_eq!(body_of(dropped_but_edited).await, (200, Some("mine".to_string())), "an edited one stays");
    let (_, workflows) = app.get_with_token("/api/v1/workflows", &access).await;
    assert_eq!(workflows["records"][0]["description"], json!(seeds::starter_workflows().unwrap()[0].description));

    let again = kiln_app_svc::seeding::seed_workspace(&app.db, workspace).await.unwrap();
    assert!(!again.changed(), "seeding twice changes nothing: {again:?}");
    app.stop().await;
}
