//! Seeded workspaces and the models API, on both databases.

use kiln_common::{db::Id, seeds, with_db};
use serde_json::Value;

use crate::harness::{Backend, assert_error, spawn_app, token};

crate::on_both_databases!(
    a_new_workspace_lists_the_system_models,
    models_page_and_are_found_by_id_slug_or_plural,
    seeding_is_idempotent_and_a_newer_seed_adds_only_what_is_missing,
    another_workspace_cannot_see_or_guess_models,
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

    assert_eq!(seeds::seed_workspace(&app.db, workspace).await.unwrap(), 0, "re-seeding adds nothing");
    assert_eq!(count(app.db.clone()).await, 7);

    // The user edits one system model; a newer seed (simulated by rolling the workspace
    // back) finds another missing.
    with_db!(&app.db, pool => {
        sqlx::query("UPDATE models SET label_plural = 'Apps' WHERE plural = 'applications'").execute(pool).await.unwrap();
        sqlx::query("DELETE FROM models WHERE plural = 'prompts'").execute(pool).await.unwrap();
        sqlx::query("UPDATE workspaces SET seed_version = 0").execute(pool).await.unwrap();
    });
    assert_eq!(seeds::upgrade_workspaces(&app.db).await.unwrap(), 1);
    assert_eq!(count(app.db.clone()).await, 7);
    let label: String = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT label_plural FROM models WHERE plural = 'applications'").fetch_one(pool).await.unwrap()
    });
    assert_eq!(label, "Apps", "the user's edit survives");
    let version: i32 = with_db!(&app.db, pool => {
        sqlx::query_scalar("SELECT seed_version FROM workspaces WHERE id = $1").bind(Id(workspace)).fetch_one(pool).await.unwrap()
    });
    assert_eq!(version, seeds::current_version().unwrap());
    assert_eq!(seeds::upgrade_workspaces(&app.db).await.unwrap(), 0, "nothing is behind any more");
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
    app.stop().await;
}
