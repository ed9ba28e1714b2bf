//! Faults: the database going away under a running Kiln.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Backend, DatabaseProxy, assert_error, read, spawn_app, spawn_app_with, token};

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
            assert_eq!(body["record"]["value"], json!("1.5"));
            break;
        }
        assert_error(status, &body, 503, "unavailable");
        assert!(Instant::now() < deadline, "not back after the database returned");
    }
    app.stop().await;
}

/// A statement that runs past `KILN_STATEMENT_TIMEOUT` (a sort over an unindexed column of
/// a big table) is cut off with 504 and frees its connection; other calls go on. On
/// PostgreSQL by `statement_timeout`, on SQLite by the readers' progress handler.
async fn a_slow_statement_is_cut_off_with_504(backend: Backend) {
    // Set up under the default limit (a busy machine may take 20 ms to create a table),
    // then run with 20 ms.
    let mut app = spawn_app(backend).await;
    let body = app.register("slow@example.com").await;
    let access = token(&body, "access_token");
    let workspace = body["user"]["workspace_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let model = json!({ "name": "Event", "fields": [{ "name": "label", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);
    match &app.db {
        kiln_common::Db::Postgres(pool) => {
            let fill = format!(
                "INSERT INTO \"ws_{}\".\"ent_events\" (id, created_at, updated_at, label) \
                 SELECT gen_random_uuid(), now(), now(), md5(i::text) FROM generate_series(1, 300000) AS i",
                workspace.simple()
            );
            // The app's pool carries the 20 ms limit under test; the fill must not.
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(fill)).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        kiln_common::Db::Sqlite(_) => {
            let file = app.columns_dir().join(format!("{}.db", workspace.hyphenated()));
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await.unwrap();
            let fill = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) \
                 INSERT INTO ent_events (id, created_at, updated_at, label) \
                 SELECT printf('00000000-0000-4000-8000-%012d', i), '2026-01-01T00:00:00+00:00', \
                 '2026-01-01T00:00:00+00:00', hex(randomblob(16)) FROM n";
            sqlx::query(fill).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    app.restart(|c| c.statement_timeout = Duration::from_millis(20)).await;
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

#[tokio::test]
async fn a_slow_statement_is_cut_off_with_504_on_postgres() {
    a_slow_statement_is_cut_off_with_504(Backend::Postgres).await;
}

#[tokio::test]
async fn a_slow_statement_is_cut_off_with_504_on_sqlite() {
    a_slow_statement_is_cut_off_with_504(Backend::Sqlite).await;
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
        // Nothing in the background on the stalled database: only the requests under test.
        c.build_workers = 0;
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
    let call =
        crate::grpc::grpc_web(&app.http, app.url("/kiln.v1.ModelService/ListModels"), &ListModelsRequest::default());
    let response = call.header("grpc-timeout", "100m").bearer_auth(&access).send().await.unwrap();
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
        let (status, _) = read(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
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
    // The proxy drops the connection it held when it restores, so the request's answer
    // is the database's unavailability, given before the stop completes.
    let (status, body) = read(response).await;
    assert_error(status, &body, 503, "unavailable");
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

/// The model role as a process of its own, on `database`; its gRPC address.
async fn model_role_process(
    database: &crate::harness::TestDatabase,
    app: &kiln::Running,
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--role", "model"])
        .env("KILN_GRPC_ADDR", "127.0.0.1:0")
        .env("KILN_APP_SVC_URL", format!("http://{}", app.grpc_addr.unwrap()))
        .env("KILN_DATABASE_URL", &database.url)
        .env("KILN_DATA_DIR", &database.dir)
        .env("KILN_JWT_SECRET", crate::harness::JWT_SECRET)
        .env("KILN_AMQP_URL", crate::harness::amqp_url())
        .env("KILN_AMQP_EXCHANGE", format!("kiln-test-{}", uuid::Uuid::new_v4().simple()))
        .env("KILN_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if let Some(addr) = entry["fields"]["grpc_addr"].as_str() {
                return addr.to_string();
            }
        }
        panic!("the model role exited before it was up");
    })
    .await
    .expect("the model role comes up");
    // Keep draining its logs so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// kill -9 of the model role while 100 schema changes are in flight on PostgreSQL: every
/// change is all or nothing, so afterwards each model's table has exactly the model's
/// columns and no table is left without its model.
#[tokio::test]
async fn killing_the_model_role_mid_schema_changes_leaves_metadata_and_tables_agreeing() {
    use kiln_common::config::Role;
    use kiln_proto::v1::{
        CreateModelRequest, Field, RegisterRequest, UpdateModelRequest, auth_service_client::AuthServiceClient,
        model_service_client::ModelServiceClient,
    };
    let database = crate::harness::TestDatabase::new(Backend::Postgres);
    let app = kiln::start(crate::harness::test_config(Role::App, &database)).await.unwrap();
    let mut auth = AuthServiceClient::new(crate::grpc::channel(app.grpc_addr.unwrap()).await);
    let register = RegisterRequest {
        email: "crash@example.com".into(),
        password: crate::harness::PASSWORD.into(),
        display_name: String::new(),
    };
    let registered = auth.register(register).await.unwrap().into_inner();
    let access = registered.tokens.unwrap().access_token;
    let workspace: uuid::Uuid = registered.user.unwrap().workspace_id.parse().unwrap();

    let (mut model_role, addr) = model_role_process(&database, &app).await;
    let models = ModelServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy(),
    );
    let field = |name: &str, previous: &str| Field {
        name: name.into(),
        r#type: "text".into(),
        previous_name: previous.into(),
        ..Default::default()
    };
    let mut changes = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (mut client, token) = (models.clone(), access.clone());
        let create =
            CreateModelRequest { name: format!("Crash{i}"), fields: vec![field("a", "")], ..Default::default() };
        changes.spawn(async move {
            client.create_model(crate::grpc::with_token(create, &token)).await.err().map(|e| e.code())
        });
        let (mut client, token) = (models.clone(), access.clone());
        let update = UpdateModelRequest {
            id: format!("crash{i}s"),
            fields: vec![field("c", "a"), field("b", "")],
            ..Default::default()
        };
        changes.spawn(async move {
            client.update_model(crate::grpc::with_token(update, &token)).await.err().map(|e| e.code())
        });
    }
    // Some changes are done, many are still queued or running: now the process dies.
    let mut answered = 0;
    while answered < 20 {
        changes.join_next().await.expect("changes left").unwrap();
        answered += 1;
    }
    model_role.start_kill().unwrap();
    model_role.wait().await.unwrap();
    let mut cut_off = 0;
    while let Some(done) = changes.join_next().await {
        // The connection to the dead process broke under these.
        cut_off += usize::from(matches!(done.unwrap(), Some(tonic::Code::Unavailable | tonic::Code::Unknown)));
    }
    assert!(cut_off > 0, "the kill came after every change had finished");

    // What the metadata says, against what the schema holds.
    let kiln_common::Db::Postgres(pool) = kiln_common::Db::connect(&database.url, Default::default()).await.unwrap()
    else {
        unreachable!()
    };
    let stored: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT table_name, fields FROM models WHERE workspace_id = $1 AND NOT is_system")
            .bind(workspace)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!stored.is_empty() && stored.len() <= 50, "{} models", stored.len());
    let schema = format!("ws_{}", workspace.simple());
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1")
            .bind(&schema)
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut expected_tables: Vec<String> = stored.iter().map(|(table, _)| table.clone()).collect();
    expected_tables.sort();
    let mut tables = tables;
    tables.sort();
    assert_eq!(tables, expected_tables, "every table has its model and every model its table");
    for (table, fields) in &stored {
        let mut columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
        )
        .bind(&schema)
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        columns.sort();
        let mut expected: Vec<String> = ["id", "created_at", "updated_at", "created_by"].map(String::from).to_vec();
        expected.extend(fields.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()));
        expected.sort();
        assert_eq!(columns, expected, "{table}");
    }
    pool.close().await;
    app.stop().await.unwrap();
}
