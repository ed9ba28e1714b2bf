//! Seeded workspaces and the models API, on both databases.

use kiln_app_svc::seeding::upgrade_workspaces;
use kiln_common::{db::Id, seeds, with_db};
use kiln_model_svc::seeding::seed_models;
use serde_json::Value;

use crate::harness::{Backend, assert_error, spawn_app, token};

crate::on_every_backend!(
    a_new_workspace_lists_the_system_models,
    models_page_and_are_found_by_id_slug_or_plural,
    seeding_is_idempotent_and_a_newer_seed_adds_only_what_is_missing,
    another_workspace_cannot_see_or_guess_models,
    creating_a_model_creates_its_typed_table,
    model_creation_refuses_bad_and_hostile_input_with_field_details,
    a_failed_table_creation_leaves_nothing_behind,
);

const SYSTEM_PLURALS: [&str; 7] =
    ["applications", "components", "models", "prompts", "templates", "users", "workflows"];

async fn a_new_workspace_lists_the_system_models(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let (status, body) = app.get_with_token("/api/models", &access).await;
    assert_eq!(status, 200, "{body}");
    let models = body["models"].as_array().unwrap();
    let plurals: Vec<&str> = models.iter().map(|m| m["plural"].as_str().unwrap()).collect();
    assert_eq!(plurals, SYSTEM_PLURALS);
    for model in models {
        assert_eq!(model["is_system"], true);
        assert_eq!(model["version"], 1);
        assert!(!model["fields"].as_array().unwrap().is_empty(), "{model}");
        assert!(!model["slug"].as_str().unwrap().is_empty());
    }
    let application = models.iter().find(|m| m["plural"] == "applications").unwrap();
    assert_eq!(
        (application["name"].as_str(), application["label_plural"].as_str()),
        (Some("Application"), Some("Applications"))
    );
    assert_eq!(application["title_field"], "name");
    let fields: Vec<&str> =
        application["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(fields.contains(&"template_set") && fields.contains(&"model_ids"), "{fields:?}");

    let response = app.http.get(app.url("/api/v1/models")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

async fn models_page_and_are_found_by_id_slug_or_plural(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let path = format!("/api/v1/models?page_size=3&page_token={page_token}");
        let (status, body) = app.get_with_token(&path, &access).await;
        assert_eq!(status, 200, "{body}");
        let models = body["models"].as_array().unwrap();
        assert!(models.len() <= 3);
        seen.extend(models.iter().map(|m| m["plural"].as_str().unwrap().to_string()));
        page_token = body["next_page_token"].as_str().unwrap().to_string();
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, SYSTEM_PLURALS);

    let (_, body) = app.get_with_token("/api/v1/models/models", &access).await;
    let id = body["model"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["model"]["name"], "Model");
    let (status, by_id) = app.get_with_token(&format!("/api/v1/models/{id}"), &access).await;
    assert_eq!(status, 200);
    assert_eq!(by_id["model"]["plural"], "models");

    let (status, body) = app.get_with_token("/api/v1/models/invoices", &access).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get_with_token("/api/v1/models?page_size=lots", &access).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "page_size");
    let (status, body) = app.get_with_token("/api/v1/models?page_size=500", &access).await;
    assert_error(status, &body, 400, "invalid_argument");
    let (status, body) = app.get_with_token("/api/v1/models?page_token=%25%25", &access).await;
    assert_error(status, &body, 400, "invalid_argument");
    app.stop().await;
}

async fn seeding_is_idempotent_and_a_newer_seed_adds_only_what_is_missing(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    let count = |db: kiln_common::Db| async move {
        with_db!(&db, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM models").fetch_one(pool).await.unwrap()
        })
    };

    // model-svc seeds the system models on the workspace's first call.
    let (status, listed) = app.get_with_token("/api/v1/models", &token(&registered, "access_token")).await;
    assert_eq!((status, listed["models"].as_array().map(Vec::len)), (200, Some(7)), "{listed}");
    assert_eq!(seed_models(&app.db, workspace).await.unwrap(), 0, "re-seeding adds nothing");
    assert_eq!(count(app.db.clone()).await, 7);

    // The user edits one system model; a newer seed (simulated by rolling the workspace
    // back) finds another missing.
    with_db!(&app.db, pool => {
        sqlx::query("UPDATE models SET label_plural = 'Apps' WHERE plural = 'applications'").execute(pool).await.unwrap();
        sqlx::query("DELETE FROM models WHERE plural = 'prompts'").execute(pool).await.unwrap();
        sqlx::query("UPDATE model_seeds SET version = 0").execute(pool).await.unwrap();
    });
    assert_eq!(seed_models(&app.db, workspace).await.unwrap(), 1);
    assert_eq!(count(app.db.clone()).await, 7);
    let label: String = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT label_plural FROM models WHERE plural = 'applications'").fetch_one(pool).await.unwrap()
    });
    assert_eq!(label, "Apps", "the user's edit survives");
    let version: i32 = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT version FROM model_seeds WHERE workspace_id = $1").bind(Id(workspace)).fetch_one(pool).await.unwrap()
    });
    assert_eq!(version, seeds::current_version().unwrap());
    assert_eq!(seed_models(&app.db, workspace).await.unwrap(), 0, "nothing is behind any more");

    // app-svc's starter items follow the same rule, remembered per workspace.
    with_db!(&app.db, pool => {
        sqlx::query("UPDATE workspaces SET seed_version = 0").execute(pool).await.unwrap();
    });
    assert_eq!(upgrade_workspaces(&app.db).await.unwrap(), 1);
    assert_eq!(upgrade_workspaces(&app.db).await.unwrap(), 0, "nothing is behind any more");
    app.stop().await;
}

async fn another_workspace_cannot_see_or_guess_models(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = token(&app.register("ada@example.com").await, "access_token");
    let eve = token(&app.register("eve@example.com").await, "access_token");
    let (_, body) = app.get_with_token("/api/v1/models/applications", &ada).await;
    let ada_model = body["model"]["id"].as_str().unwrap().to_string();

    let (status, body) = app.get_with_token(&format!("/api/v1/models/{ada_model}"), &eve).await;
    assert_error(status, &body, 404, "not_found");
    let (_, body) = app.get_with_token("/api/v1/models", &eve).await;
    let ids: Vec<&Value> = body["models"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(ids.len(), 7);
    assert!(!ids.iter().any(|id| **id == ada_model), "eve sees only her own workspace's models");

    // Every model route, with Ada's user model's id and plural, from Eve's token.
    let invoice = serde_json::json!({ "name": "Invoice", "fields": [{ "name": "number", "type": "text" }] });
    let (_, created) = app.post_with_token("/api/v1/models", &ada, invoice).await;
    let invoice_id = created["model"]["id"].as_str().unwrap().to_string();
    for key in [invoice_id.as_str(), "invoices"] {
        let (status, body) = app.get_with_token(&format!("/api/v1/models/{key}"), &eve).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = app.get_with_token(&format!("/api/v1/models/{key}/versions"), &eve).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) =
            app.post_with_token(&format!("/api/v1/models/{key}/plan"), &eve, serde_json::json!({ "fields": [] })).await;
        assert_error(status, &body, 404, "not_found");
        let response = app
            .http
            .put(app.url(&format!("/api/v1/models/{key}")))
            .bearer_auth(&eve)
            .json(&serde_json::json!({ "fields": [], "confirm_data_loss": true }))
            .send()
            .await
            .unwrap();
        let (status, body) = crate::harness::read(response).await;
        assert_error(status, &body, 404, "not_found");
        let response = app
            .http
            .delete(app.url(&format!("/api/v1/models/{key}?confirm_data_loss=true")))
            .bearer_auth(&eve)
            .send()
            .await
            .unwrap();
        let (status, body) = crate::harness::read(response).await;
        assert_error(status, &body, 404, "not_found");
    }
    let (status, still) = app.get_with_token(&format!("/api/v1/models/{invoice_id}"), &ada).await;
    assert_eq!((status, &still["model"]["version"]), (200, &serde_json::json!(1)));
    app.stop().await;
}

fn workspace_of(registered: &Value) -> uuid::Uuid {
    registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap()
}

fn invoice() -> Value {
    serde_json::json!({
        "name": "Invoice",
        "fields": [
            { "name": "number", "type": "text", "required": true, "unique": true, "max_length": 20 },
            { "name": "amount", "type": "decimal", "min": 0 },
            { "name": "paid", "type": "boolean" },
            { "name": "due", "type": "date" },
            { "name": "sent_at", "type": "datetime" },
            { "name": "status", "type": "enum", "enum_values": ["draft", "sent", "paid"] },
            { "name": "lines", "type": "json" },
            { "name": "count", "type": "integer" },
            { "name": "contact", "type": "email" },
            { "name": "ref", "type": "uuid" }
        ]
    })
}

async fn creating_a_model_creates_its_typed_table(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let workspace = workspace_of(&registered);

    let (status, body) = app.post_with_token("/api/v1/models", &access, invoice()).await;
    assert_eq!(status, 201, "{body}");
    let model = &body["model"];
    assert_eq!(
        (&model["singular"], &model["plural"], &model["table_name"], &model["is_system"]),
        (
            &serde_json::json!("invoice"),
            &serde_json::json!("invoices"),
            &serde_json::json!("ent_invoices"),
            &serde_json::json!(false)
        )
    );
    assert_eq!(model["label_plural"], "Invoices");
    assert_eq!(model["title_field"], "number");
    assert_eq!(model["fields"][4]["label"], "Sent at");

    let columns = app.columns(workspace, "ent_invoices").await;
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "created_at",
            "updated_at",
            "created_by",
            "number",
            "amount",
            "paid",
            "due",
            "sent_at",
            "status",
            "lines",
            "count",
            "contact",
            "ref"
        ]
    );
    let ty = |name: &str| columns.iter().find(|c| c.0 == name).unwrap().1.to_lowercase();
    let expected = match backend {
        Backend::Postgres | Backend::Mesh => [
            ("id", "uuid"),
            ("created_at", "timestamp with time zone"),
            ("amount", "numeric"),
            ("paid", "boolean"),
            ("due", "date"),
            ("lines", "jsonb"),
            ("count", "bigint"),
            ("ref", "uuid"),
        ],
        Backend::Sqlite => [
            ("id", "text"),
            ("created_at", "text"),
            ("amount", "real"),
            ("paid", "integer"),
            ("due", "text"),
            ("lines", "text"),
            ("count", "integer"),
            ("ref", "text"),
        ],
    };
    for (column, column_type) in expected {
        assert_eq!(ty(column), column_type, "{column}");
    }
    assert!(columns.iter().find(|c| c.0 == "number").unwrap().2, "required is NOT NULL");

    let (_, listed) = app.get_with_token("/api/v1/models", &access).await;
    let plurals: Vec<&str> =
        listed["models"].as_array().unwrap().iter().map(|m| m["plural"].as_str().unwrap()).collect();
    assert!(plurals.contains(&"invoices"));
    let (status, versions) = app.get_with_token("/api/v1/models/invoices", &access).await;
    assert_eq!((status, &versions["model"]["version"]), (200, &serde_json::json!(1)));

    let (status, body) = app.post_with_token("/api/v1/models", &access, serde_json::json!({ "name": "invoice" })).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "name");

    // A relation to it from a second model.
    let payment = serde_json::json!({ "name": "Payment", "fields": [
        { "name": "invoice", "type": "relation", "required": true, "relation": { "target": "invoices", "on_delete": "cascade" } },
        { "name": "amount", "type": "decimal" }
    ]});
    let (status, body) = app.post_with_token("/api/v1/models", &access, payment).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["model"]["fields"][0]["relation"]["kind"], "many_to_one");
    assert_eq!(app.columns(workspace, "ent_payments").await[4].0, "invoice");
    app.stop().await;
}

async fn model_creation_refuses_bad_and_hostile_input_with_field_details(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let workspace = workspace_of(&registered);

    for name in [
        "Robert'); DROP TABLE users;--",
        "in\"voice",
        "Invоice",
        "invoice\u{200b}",
        "select",
        "auth",
        "Model",
        "",
        "9lives",
    ] {
        let (status, body) = app.post_with_token("/api/v1/models", &access, serde_json::json!({ "name": name })).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], "name", "{name:?}: {body}");
    }

    let bad_fields = serde_json::json!({ "name": "Order Line", "fields": [
        { "name": "id", "type": "text" },
        { "name": "qty\"; DROP TABLE x; --", "type": "integer" },
        { "name": "price", "type": "money" },
        { "name": "state", "type": "enum", "enum_values": ["a', 'b"] },
        { "name": "customer", "type": "relation", "relation": { "target": "customers" } }
    ], "title_field": "nope" });
    let (status, body) = app.post_with_token("/api/v1/models", &access, bad_fields).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    let fields: Vec<&str> = error["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "fields[0].name",
            "fields[1].name",
            "fields[2].type",
            "fields[3].enum_values",
            "title_field",
            "fields[4].relation.target"
        ],
        "{body}"
    );
    let (status, body) =
        app.post_with_token("/api/v1/models", &access, serde_json::json!({ "name": "x", "fields": "nope" })).await;
    assert_error(status, &body, 400, "invalid_argument");

    assert!(app.columns(workspace, "ent_order_lines").await.is_empty(), "nothing was created");
    let (_, listed) = app.get_with_token("/api/v1/models", &access).await;
    assert_eq!(listed["models"].as_array().unwrap().len(), 7);
    let response = app.http.post(app.url("/api/v1/models")).json(&invoice()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

async fn a_failed_table_creation_leaves_nothing_behind(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let workspace = workspace_of(&registered);

    // A stray table where the model's table must go makes the DDL fail.
    match &app.db {
        kiln_common::Db::Postgres(pool) => {
            let schema = format!("ws_{}", workspace.simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE \"{schema}\".\"ent_invoices\" (x int)")))
                .execute(pool)
                .await
                .unwrap();
            // Whichever database user model-svc runs as (the mesh's is not the owner) may
            // create tables there, so its CREATE TABLE meets the stray table.
            sqlx::query(sqlx::AssertSqlSafe(format!("GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO PUBLIC")))
                .execute(pool)
                .await
                .unwrap();
        }
        kiln_common::Db::Sqlite(_) => {
            // The workspace file is created on first use; make it exist with the stray table.
            let (status, _) =
                app.post_with_token("/api/v1/models", &access, serde_json::json!({ "name": "Warmup" })).await;
            assert_eq!(status, 201);
            let dir = app.columns_dir().join(format!("{}.db", workspace.hyphenated()));
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.display())).await.unwrap();
            sqlx::query("CREATE TABLE \"ent_invoices\" (x INTEGER)").execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let (status, body) = app.post_with_token("/api/v1/models", &access, invoice()).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "name", "{body}");
    assert!(error["message"].as_str().unwrap().contains("`ent_invoices`"), "{body}");
    let (status, body) = app.get_with_token("/api/v1/models/invoices", &access).await;
    assert_error(status, &body, 404, "not_found");
    let versions: i64 = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.plural = 'invoices'")
            .fetch_one(pool).await.unwrap()
    });
    assert_eq!(versions, 0);
    let columns = app.columns(workspace, "ent_invoices").await;
    assert_eq!(columns.len(), 1, "the stray table is untouched and no model table was made: {columns:?}");
    app.stop().await;
}
