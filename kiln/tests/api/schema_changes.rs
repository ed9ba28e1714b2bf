//! Changing and deleting models: planned diffs, renames that keep data, confirmation
//! before anything is dropped, versions, on both databases.

use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, assert_error, read, spawn_app, token};

crate::on_every_backend!(
    fields_are_added_renamed_and_dropped_keeping_data,
    deleting_models_needs_confirmation_and_respects_relations,
    a_record_read_before_a_rename_reads_under_the_new_name,
);

async fn put(app: &TestApp, path: &str, access: &str, body: Value) -> (u16, Value) {
    read(app.http.put(app.url(path)).bearer_auth(access).json(&body).send().await.unwrap()).await
}

async fn delete(app: &TestApp, path: &str, access: &str) -> (u16, Value) {
    read(app.http.delete(app.url(path)).bearer_auth(access).send().await.unwrap()).await
}

async fn fields_are_added_renamed_and_dropped_keeping_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    let model = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true, "unique": true },
        { "name": "amount", "type": "decimal" },
        { "name": "note", "type": "text" }
    ]});
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);
    let (_, one) =
        app.post_with_token("/api/invoices", &access, json!({ "number": "A", "amount": 10, "note": "x" })).await;
    let id = one["record"]["id"].as_str().unwrap().to_string();

    let change = json!({ "fields": [
        { "name": "number", "type": "text", "required": true, "unique": true, "label": "Invoice no." },
        { "name": "total", "type": "decimal", "previous_name": "amount" },
        { "name": "currency", "type": "text", "required": true, "default_value": "EUR" }
    ]});
    let (status, plan) = app.post_with_token("/api/v1/models/invoices/plan", &access, change.clone()).await;
    assert_eq!(status, 200, "{plan}");
    let actions: Vec<&str> =
        plan["changes"].as_array().unwrap().iter().map(|c| c["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["rename_column", "add_column", "drop_column"]);
    assert_eq!(plan["destructive"], true);

    let (status, body) = put(&app, "/api/v1/models/invoices", &access, change.clone()).await;
    let error = assert_error(status, &body, 409, "failed_precondition");
    assert_eq!(error["details"], json!([{ "field": "note", "description": "column and every value in it" }]));
    let (_, unchanged) = app.get_with_token("/api/v1/models/invoices", &access).await;
    assert_eq!(unchanged["model"]["version"], 1, "planning and refusing change nothing");

    let mut confirmed = change.clone();
    confirmed["confirm_data_loss"] = json!(true);
    let (status, body) = put(&app, "/api/v1/models/invoices", &access, confirmed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["version"], 2);
    assert_eq!(body["model"]["fields"][0]["label"], "Invoice no.");

    let columns: Vec<String> = app.columns(workspace, "ent_invoices").await.into_iter().map(|c| c.0).collect();
    assert_eq!(
        columns.iter().filter(|c| !c.ends_with("_at") && *c != "id" && *c != "created_by").collect::<Vec<_>>().len(),
        3
    );
    assert!(
        columns.contains(&"total".to_string())
            && !columns.contains(&"amount".to_string())
            && !columns.contains(&"note".to_string())
    );
    let (_, record) = app.get_with_token(&format!("/api/invoices/{id}"), &access).await;
    assert_eq!(record["record"]["total"], "10", "a rename keeps the data");
    assert_eq!(record["record"]["currency"], "EUR", "a required field added with a default is backfilled");
    assert_eq!(record["record"].get("note"), None);
    let (status, body) = app.post_with_token("/api/invoices", &access, json!({ "number": "A", "total": 1 })).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "number", "unique still holds after the change");

    // A required field without a default cannot be added to a model with records, and
    // a field's type cannot change in place.
    let (status, body) = put(
        &app,
        "/api/v1/models/invoices",
        &access,
        json!({ "fields": [
            { "name": "number", "type": "text", "required": true, "unique": true },
            { "name": "total", "type": "decimal" },
            { "name": "currency", "type": "text", "required": true, "default_value": "EUR" },
            { "name": "owner", "type": "text", "required": true }
        ]}),
    )
    .await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "fields[3]");
    let (status, body) = put(
        &app,
        "/api/v1/models/invoices",
        &access,
        json!({ "fields": [
            { "name": "number", "type": "integer", "required": true, "unique": true },
            { "name": "total", "type": "decimal" },
            { "name": "currency", "type": "text", "required": true, "default_value": "EUR" }
        ]}),
    )
    .await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "fields[0]");

    let (status, versions) = app.get_with_token("/api/v1/models/invoices/versions", &access).await;
    assert_eq!(status, 200, "{versions}");
    let numbers: Vec<i64> =
        versions["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [2, 1]);
    assert!(versions["versions"][0]["summary"].as_str().unwrap().contains("rename column amount to total"));
    assert_eq!(versions["versions"][0]["author"], registered["user"]["id"]);

    let (status, body) = put(&app, "/api/v1/models/users", &access, json!({ "fields": [] })).await;
    assert_error(status, &body, 409, "failed_precondition");
    app.stop().await;
}

async fn deleting_models_needs_confirmation_and_respects_relations(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    let invoice = json!({ "name": "Invoice", "fields": [{ "name": "number", "type": "text" }] });
    let payment = json!({ "name": "Payment", "fields": [
        { "name": "invoice", "type": "relation", "relation": { "target": "invoices" } }
    ]});
    assert_eq!(app.post_with_token("/api/v1/models", &access, invoice).await.0, 201);
    assert_eq!(app.post_with_token("/api/v1/models", &access, payment).await.0, 201);
    assert_eq!(app.post_with_token("/api/invoices", &access, json!({ "number": "A" })).await.0, 201);

    let (status, body) = delete(&app, "/api/v1/models/invoices", &access).await;
    let error = assert_error(status, &body, 409, "failed_precondition");
    assert_eq!(error["details"][0]["field"], "invoices");
    let (status, body) = delete(&app, "/api/v1/models/invoices?confirm_data_loss=true", &access).await;
    let error = assert_error(status, &body, 409, "failed_precondition");
    assert!(error["message"].as_str().unwrap().contains("payments.invoice"), "{body}");

    let (status, _) = delete(&app, "/api/v1/models/payments?confirm_data_loss=true", &access).await;
    assert_eq!(status, 204);
    let (status, _) = delete(&app, "/api/v1/models/invoices?confirm_data_loss=true", &access).await;
    assert_eq!(status, 204);
    assert!(app.columns(workspace, "ent_invoices").await.is_empty(), "the table is dropped");
    let (status, body) = app.get_with_token("/api/invoices", &access).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = delete(&app, "/api/v1/models/applications?confirm_data_loss=true", &access).await;
    assert_error(status, &body, 409, "failed_precondition");
    let (status, body) = delete(&app, "/api/v1/models/invoices?confirm_data_loss=maybe", &access).await;
    assert_error(status, &body, 400, "invalid_argument");

    // The name is free again.
    let again = json!({ "name": "Invoice", "fields": [{ "name": "total", "type": "decimal" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, again).await.0, 201);
    app.stop().await;
}

/// A model of `rows` records with a relation target, filled straight in the SQLite file.
async fn big_sqlite_model(app: &TestApp, access: &str, workspace: uuid::Uuid, rows: u32) {
    let parent = json!({ "name": "Owner", "fields": [{ "name": "name", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", access, parent).await.0, 201);
    let model = json!({ "name": "Reading", "fields": [
        { "name": "value", "type": "integer" },
        { "name": "owner", "type": "relation", "relation": { "target": "owners" } }
    ]});
    assert_eq!(app.post_with_token("/api/v1/models", access, model).await.0, 201);
    let file = app.columns_dir().join(format!("{}.db", workspace.hyphenated()));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await.unwrap();
    let fill = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
         INSERT INTO ent_readings (id, created_at, updated_at, value) \
         SELECT printf('00000000-0000-4000-8000-%012d', i), '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', i FROM n"
    );
    sqlx::query(sqlx::AssertSqlSafe(fill)).execute(&pool).await.unwrap();
    pool.close().await;
}

/// On SQLite a change rebuilds the table; the copy of a big table must not hold up other
/// workspaces' writes (sign-ins write sessions to the platform file).
#[tokio::test]
async fn a_long_sqlite_rebuild_does_not_hold_up_sign_ins() {
    let app = spawn_app(Backend::Sqlite).await;
    let registered = app.register("builder@example.com").await;
    let access = token(&registered, "access_token");
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    app.register("other@example.com").await;
    big_sqlite_model(&app, &access, workspace, 400_000).await;

    let rebuilt = std::sync::atomic::AtomicBool::new(false);
    let change = json!({ "fields": [
        { "name": "value", "type": "integer" },
        { "name": "owner", "type": "relation", "relation": { "target": "owners" } },
        { "name": "unit", "type": "text", "default_value": "kWh" }
    ]});
    let rebuild = async {
        let (status, body) = put(&app, "/api/v1/models/readings", &access, change).await;
        assert_eq!(status, 200, "{body}");
        rebuilt.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    // Sign-ins keep completing while the rebuild runs; held up, at most one would.
    let sign_ins = async {
        let mut during = 0;
        while !rebuilt.load(std::sync::atomic::Ordering::SeqCst) {
            let login = json!({ "email": "other@example.com", "password": crate::harness::PASSWORD });
            let (status, body) = app.post("/api/v1/auth/login", login).await;
            assert_eq!(status, 200, "{body}");
            if !rebuilt.load(std::sync::atomic::Ordering::SeqCst) {
                during += 1;
            }
        }
        during
    };
    let ((), during) = tokio::join!(rebuild, sign_ins);
    assert!(during >= 2, "sign-ins waited for the rebuild: {during} completed during it");
    app.stop().await;
}

/// A client that goes away mid-rebuild neither stops the change half-way nor leaves a
/// connection with foreign keys switched off in the pool.
#[tokio::test]
async fn a_rebuild_whose_caller_goes_away_completes_and_keeps_foreign_keys_on() {
    let app = spawn_app(Backend::Sqlite).await;
    let registered = app.register("quitter@example.com").await;
    let access = token(&registered, "access_token");
    let workspace: uuid::Uuid = registered["user"]["workspace_id"].as_str().unwrap().parse().unwrap();
    big_sqlite_model(&app, &access, workspace, 300_000).await;
    let change = json!({ "fields": [
        { "name": "value", "type": "integer" },
        { "name": "owner", "type": "relation", "relation": { "target": "owners" } },
        { "name": "unit", "type": "text", "default_value": "kWh" }
    ]});
    let gave_up = app
        .http
        .put(app.url("/api/v1/models/readings"))
        .bearer_auth(&access)
        .json(&change)
        .timeout(std::time::Duration::from_millis(50))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the client gave up before the answer");
    // The change still lands.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, body) = app.get_with_token("/api/v1/models/readings", &access).await;
        assert_eq!(status, 200, "{body}");
        if body["model"]["version"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the change never landed");
    }
    let (status, body) = app.get_with_token("/api/readings?page_size=1", &access).await;
    assert_eq!((status, &body["records"][0]["unit"]), (200, &json!("kWh")), "{body}");
    // Every write still has its foreign keys checked.
    for _ in 0..6 {
        let dangling = json!({ "value": 1, "owner": uuid::Uuid::new_v4().to_string() });
        let (status, body) = app.post_with_token("/api/readings", &access, dangling).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], "owner", "{body}");
    }
    app.stop().await;
}

/// The connection that read a record before its field was renamed reads it again after:
/// on SQLite the rename rebuilds the table, and a connection's cached schema must not
/// turn the new column name into a string literal (see `.cargo/config.toml`).
async fn a_record_read_before_a_rename_reads_under_the_new_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let model = json!({ "name": "Note", "fields": [{ "name": "body", "type": "text" }] });
    let (status, created) = app.post_with_token("/api/v1/models", &access, model).await;
    assert_eq!(status, 201, "{created}");
    let (status, note) = app.post_with_token("/api/v1/notes", &access, json!({ "body": "kept" })).await;
    assert_eq!(status, 201, "{note}");
    let path = format!("/api/v1/notes/{}", note["record"]["id"].as_str().unwrap());
    // Every reader connection has read it (and prepared the statement) before the change.
    for _ in 0..8 {
        assert_eq!(app.get_with_token(&path, &access).await.0, 200);
    }
    let rename = json!({ "fields": [{ "name": "text", "type": "text", "previous_name": "body" }] });
    let (status, changed) = put(&app, "/api/v1/models/notes", &access, rename).await;
    assert_eq!(status, 200, "{changed}");
    for _ in 0..8 {
        let (status, read) = app.get_with_token(&path, &access).await;
        assert_eq!((status, &read["record"]["text"]), (200, &json!("kept")), "{read}");
    }
    app.stop().await;
}
