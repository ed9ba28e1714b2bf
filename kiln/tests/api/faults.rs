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

/// REST and gRPC get the same bounds: a request that cannot answer within the request
/// timeout (the database hangs) is cut off with 504 / DEADLINE_EXCEEDED, and past the
/// concurrency limit the gateway answers 503 / UNAVAILABLE at once. Probes still answer.
#[tokio::test]
async fn deadlines_and_the_concurrency_limit_hold_for_every_protocol() {
    use kiln_proto::v1::{ListModelsRequest, model_service_client::ModelServiceClient};
    let proxy = DatabaseProxy::start().await;
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.database_url = proxy.via(&c.database_url);
        c.request_timeout = Duration::from_millis(1500);
        c.max_concurrent_requests = 2;
    })
    .await;
    let access = token(&app.register("hang@example.com").await, "access_token");
    let mut grpc = ModelServiceClient::new(crate::grpc::channel(app.addr).await);
    proxy.stall();

    let (status, body) = app.get_with_token("/api/v1/models", &access).await;
    assert_error(status, &body, 504, "deadline_exceeded");
    let timed_out = grpc.list_models(crate::grpc::with_token(ListModelsRequest::default(), &access)).await;
    assert_eq!(timed_out.unwrap_err().code(), tonic::Code::DeadlineExceeded);
    // A client's shorter deadline wins. Sent over grpc-web, whose client here keeps no
    // timer of its own, so it is the gateway that gives up.
    let started = Instant::now();
    let response = app
        .http
        .post(app.url("/kiln.v1.ModelService/ListModels"))
        .header("content-type", "application/grpc-web+proto")
        .header("grpc-timeout", "100m")
        .bearer_auth(&access)
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
    assert!(started.elapsed() < Duration::from_millis(1400), "the client's deadline was not the one used");

    // Two requests hang on the database; the third is turned away at once.
    let hanging = [app.get_with_token("/api/v1/models", &access), app.get_with_token("/api/v1/models", &access)];
    let turned_away = async {
        // Both hanging requests are admitted before this one asks.
        tokio::task::yield_now().await;
        let mut refused = None;
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let (status, body) = app.get_with_token("/api/v1/models", &access).await;
            if status == 503 {
                refused = Some(body);
                break;
            }
        }
        let grpc_refused = grpc.list_models(crate::grpc::with_token(ListModelsRequest::default(), &access)).await;
        let (status, _) = crate::harness::read(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
        (refused, grpc_refused, status)
    };
    let (hung, (refused, grpc_refused, ready)) = tokio::join!(futures_join(hanging), turned_away);
    let refused = refused.expect("a third request was refused while two hung");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("busy"), "{refused}");
    assert_eq!(grpc_refused.unwrap_err().code(), tonic::Code::Unavailable);
    assert_eq!(ready, 200, "probes are not counted against the limit");
    assert!(hung.iter().all(|(status, _)| *status == 504), "{hung:?}");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get_with_token("/api/v1/models", &access).await.0 != 200 {
        assert!(Instant::now() < deadline, "not back after the database returned");
    }
    app.stop().await;
}

async fn futures_join<F: std::future::Future>(futures: [F; 2]) -> Vec<F::Output> {
    let [a, b] = futures;
    let (a, b) = tokio::join!(a, b);
    vec![a, b]
}

/// Stopping waits for requests in flight: one held up by the database completes once the
/// database answers, and only then does the process stop.
#[tokio::test]
async fn a_graceful_stop_lets_requests_in_flight_finish() {
    let proxy = DatabaseProxy::start().await;
    let app = spawn_app_with(Backend::Postgres, |c| c.database_url = proxy.via(&c.database_url)).await;
    let access = token(&app.register("drain@example.com").await, "access_token");
    let (http, url) = (app.http.clone(), app.url("/api/v1/models"));
    proxy.stall();
    let in_flight = tokio::spawn(async move { http.get(url).bearer_auth(access).send().await });
    // The request is in the server, waiting on the stalled database, before the stop.
    proxy.until_held().await;
    let stopping = tokio::spawn(app.stop());
    tokio::task::yield_now().await;
    assert!(!stopping.is_finished(), "stopped with a request in flight");
    proxy.restore();
    let response = in_flight.await.unwrap().expect("the request in flight was answered");
    assert!(response.status().is_success() || response.status() == 503, "{}", response.status());
    tokio::time::timeout(Duration::from_secs(20), stopping).await.expect("stopped after draining").unwrap();
}

/// …but not for ever: past KILN_SHUTDOWN_TIMEOUT the process stops with requests unanswered.
#[tokio::test]
async fn a_stop_gives_up_on_requests_in_flight_after_the_shutdown_timeout() {
    let proxy = DatabaseProxy::start().await;
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.database_url = proxy.via(&c.database_url);
        c.shutdown_timeout = Duration::from_millis(300);
        c.request_timeout = Duration::from_secs(3600);
        c.statement_timeout = Duration::from_secs(3600);
    })
    .await;
    let access = token(&app.register("stuck@example.com").await, "access_token");
    let (http, url) = (app.http.clone(), app.url("/api/v1/models"));
    proxy.stall();
    let in_flight = tokio::spawn(async move { http.get(url).bearer_auth(access).send().await });
    proxy.until_held().await;
    // The database stays stalled: only the shutdown timeout can end this.
    tokio::time::timeout(Duration::from_secs(20), app.stop()).await.expect("stopped within the shutdown timeout");
    in_flight.abort();
    proxy.restore();
}
