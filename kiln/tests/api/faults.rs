//! Faults: the database going away under a running Kiln.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Backend, DatabaseProxy, assert_error, spawn_app_with, token};

/// While PostgreSQL cannot be reached, calls answer 503 `unavailable` with a clear
/// message (never 500); once it is back, the same process serves again.
#[tokio::test]
async fn a_database_that_goes_away_answers_503_and_recovers_without_restart() {
    let proxy = DatabaseProxy::start().await;
    let app = spawn_app_with(Backend::Postgres, |c| c.database_url = proxy.via(&c.database_url)).await;
    let access = token(&app.register("outage@example.com").await, "access_token");
    let model = json!({ "name": "Reading", "fields": [{ "name": "value", "type": "decimal" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);
    let (status, body) = app.post_with_token("/api/readings", &access, json!({ "value": 1.5 })).await;
    assert_eq!(status, 201, "{body}");
    let id = body["record"]["id"].as_str().unwrap().to_string();

    proxy.cut();
    for (path, body) in [("/api/readings", Some(json!({ "value": 2 }))), ("/api/v1/auth/profile", None)] {
        let (status, body) = match body {
            Some(body) => app.post_with_token(path, &access, body).await,
            None => app.get_with_token(path, &access).await,
        };
        let error = assert_error(status, &body, 503, "unavailable");
        assert!(error["message"].as_str().unwrap().contains("try again"), "{body}");
    }
    // Reads that the session cache lets through still meet the database for the record.
    let (status, body) = app.get_with_token(&format!("/api/readings/{id}"), &access).await;
    assert_error(status, &body, 503, "unavailable");
    let (status, body) =
        app.post("/api/v1/auth/login", json!({ "email": "outage@example.com", "password": "x" })).await;
    assert_error(status, &body, 503, "unavailable");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get_with_token(&format!("/api/readings/{id}"), &access).await;
        if status == 200 {
            assert_eq!(body["record"]["value"], json!(1.5));
            break;
        }
        assert_error(status, &body, 503, "unavailable");
        assert!(Instant::now() < deadline, "not back after the database returned");
    }
    app.stop().await;
}

/// A statement that runs past `KILN_STATEMENT_TIMEOUT` (a sort over an unindexed column of
/// a big table) is cut off with 504 and frees its connection; other calls go on.
#[tokio::test]
async fn a_slow_statement_is_cut_off_with_504() {
    let app = spawn_app_with(Backend::Postgres, |c| c.statement_timeout = Duration::from_millis(20)).await;
    let body = app.register("slow@example.com").await;
    let access = token(&body, "access_token");
    let workspace = body["user"]["workspace_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let model = json!({ "name": "Event", "fields": [{ "name": "label", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);
    let kiln_common::Db::Postgres(pool) = &app.db else { unreachable!("a PostgreSQL test") };
    let fill = format!(
        "INSERT INTO \"ws_{}\".\"ent_events\" (id, created_at, updated_at, label) \
         SELECT gen_random_uuid(), now(), now(), md5(i::text) FROM generate_series(1, 300000) AS i",
        workspace.simple()
    );
    sqlx::query(sqlx::AssertSqlSafe(fill)).execute(pool).await.unwrap();

    let (status, body) = app.get_with_token("/api/events?sort=-label&page_size=5", &access).await;
    let error = assert_error(status, &body, 504, "deadline_exceeded");
    assert!(error["message"].as_str().unwrap().contains("longer than allowed"), "{body}");
    // The indexed default order still answers, and so does everything else.
    let (status, body) = app.get_with_token("/api/events?page_size=5", &access).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get_with_token("/api/v1/models", &access).await;
    assert_eq!(status, 200);
    app.stop().await;
}
