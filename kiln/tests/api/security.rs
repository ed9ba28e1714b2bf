//! Defects found in a read of the code, each kept fixed by the test that showed it:
//! sessions bound to their user and workspace, refresh racing logout.

use kiln_common::{TokenKeys, db::Id, sessions::SESSION_CACHE_TTL, with_db};
use serde_json::json;

use crate::harness::{Backend, JWT_SECRET, PASSWORD, assert_error, read, spawn_app, spawn_app_with, token};

crate::on_every_backend!(
    a_token_naming_another_workspace_with_ones_own_session_is_refused,
    a_refresh_racing_a_logout_never_leaves_the_session_live,
    session_checks_are_remembered_within_the_documented_bound,
    an_oversized_password_is_refused_before_hashing,
    paging_in_the_default_order_advances,
    a_model_with_the_longest_name_works_end_to_end,
    a_plural_and_a_slug_never_name_two_models,
    a_seed_upgrade_leaves_a_user_model_holding_a_system_name_alone,
    deeply_nested_json_is_refused_naming_the_field,
    a_page_of_big_records_stays_within_a_message,
    repeated_failed_sign_ins_lock_an_address_alike_for_known_and_unknown,
    the_workspace_owner_reads_its_security_events,
);

fn claims_of(body: &serde_json::Value) -> (uuid::Uuid, uuid::Uuid, uuid::Uuid) {
    let keys = TokenKeys::new(JWT_SECRET, &[], std::time::Duration::from_secs(900));
    let claims = keys.verify(&token(body, "access_token")).expect("a token Kiln issued verifies");
    (claims.sub, claims.ws, claims.sid)
}

/// Whoever holds the signing secret (a leaked or default one) could take their own live
/// session and sign a token for any user and workspace: the session must be theirs.
async fn a_token_naming_another_workspace_with_ones_own_session_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.register("victim@example.com").await;
    let attacker = app.register("attacker@example.com").await;
    let (victim_user, victim_ws, _) = claims_of(&victim);
    let (attacker_user, _, attacker_sid) = claims_of(&attacker);
    let keys = TokenKeys::new(JWT_SECRET, &[], std::time::Duration::from_secs(900));

    for (user, workspace) in [(attacker_user, victim_ws), (victim_user, victim_ws)] {
        let forged = keys.issue(user, workspace, attacker_sid).unwrap();
        let (status, body) = app.get_with_token("/api/v1/models", &forged).await;
        assert_error(status, &body, 401, "unauthenticated");
        let (status, body) = app.get_with_token("/api/v1/auth/profile", &forged).await;
        assert_error(status, &body, 401, "unauthenticated");
    }
    let (status, _) = app.get_with_token("/api/v1/models", &token(&attacker, "access_token")).await;
    assert_eq!(status, 200, "the attacker's own token still works");
    app.stop().await;
}

/// Logout and a refresh of the same session at the same moment: whichever wins, once
/// logout has answered 204 nothing of the session may work any more.
async fn a_refresh_racing_a_logout_never_leaves_the_session_live(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("racer@example.com").await;
    let credentials = json!({ "email": "racer@example.com", "password": PASSWORD });
    for round in 0..12 {
        let (status, login) = app.post("/api/v1/auth/login", credentials.clone()).await;
        assert_eq!(status, 200, "{login}");
        let access = token(&login, "access_token");
        let refresh = json!({ "refresh_token": token(&login, "refresh_token") });
        let refreshing = app.post("/api/v1/auth/refresh", refresh);
        let logging_out = app.http.post(app.url("/api/v1/auth/logout")).bearer_auth(&access).send();
        let ((refresh_status, refreshed), logout) = tokio::join!(refreshing, logging_out);
        assert_eq!(logout.unwrap().status(), 204, "round {round}");
        if refresh_status != 200 {
            assert_error(refresh_status, &refreshed, 401, "unauthenticated");
            continue;
        }
        let (status, body) = app.get_with_token("/api/v1/auth/profile", &token(&refreshed, "access_token")).await;
        assert_error(status, &body, 401, "unauthenticated");
        let again = json!({ "refresh_token": token(&refreshed, "refresh_token") });
        let (status, body) = app.post("/api/v1/auth/refresh", again).await;
        assert_error(status, &body, 401, "unauthenticated");
    }
    app.stop().await;
}

/// A call does not ask the database whether its session is live each time: a session
/// ended behind Kiln's back (straight in the database, no announcement) still works at
/// once, and is refused within the documented staleness bound.
async fn session_checks_are_remembered_within_the_documented_bound(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = app.register("cached@example.com").await;
    let access = token(&body, "access_token");
    let (_, _, sid) = claims_of(&body);
    let (status, _) = app.get_with_token("/api/v1/auth/profile", &access).await;
    assert_eq!(status, 200);
    with_db!(&app.db, pool => {
        sqlx::query("UPDATE sessions SET revoked_at = created_at WHERE id = $1").bind(Id(sid)).execute(pool).await.unwrap();
    });
    let ended_at = std::time::Instant::now();
    let (status, body) = app.get_with_token("/api/v1/auth/profile", &access).await;
    assert_eq!(status, 200, "answered from the cache: {body}");
    loop {
        let (status, body) = app.get_with_token("/api/v1/auth/profile", &access).await;
        if status == 401 {
            break;
        }
        assert!(ended_at.elapsed() < SESSION_CACHE_TTL + std::time::Duration::from_secs(2), "still live: {body}");
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

/// AuthService over gRPC and grpc-web spends the same per-address budget as REST `/auth`.
#[tokio::test]
async fn auth_over_grpc_and_grpc_web_shares_the_rest_rate_limit() {
    use kiln_proto::v1::{LoginRequest, auth_service_client::AuthServiceClient};
    let app = spawn_app_with(Backend::Sqlite, |c| c.auth_rate_limit_per_minute = 4).await;
    let login = LoginRequest { email: "nobody@example.com".into(), password: "whatever 123".into() };
    let mut grpc = AuthServiceClient::new(crate::grpc::channel(app.addr).await);
    for _ in 0..2 {
        assert_eq!(grpc.login(login.clone()).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    }
    let (status, _) = app.post("/api/v1/auth/login", json!({ "email": "nobody@example.com", "password": "x" })).await;
    assert_eq!(status, 401);
    let web = |app: &crate::harness::TestApp| {
        crate::grpc::grpc_web(&app.http, app.url("/kiln.v1.AuthService/Login"), &login).send()
    };
    let response = web(&app).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "16", "the fourth call is still within the budget");

    // The budget is spent, whichever protocol asks next.
    let refused = grpc.login(login.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("retry in"), "{refused:?}");
    let response = web(&app).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "8");
    assert!(response.headers().contains_key("retry-after"));
    let response = app.http.post(app.url("/api/auth/login")).json(&json!({})).send().await.unwrap();
    let (status, body) = read(response).await;
    assert_error(status, &body, 429, "resource_exhausted");
    app.stop().await;
}

async fn an_oversized_password_is_refused_before_hashing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("long@example.com").await;
    for email in ["long@example.com", "nobody@example.com"] {
        let login = json!({ "email": email, "password": "a1".repeat(50_000) });
        let (status, body) = app.post("/api/v1/auth/login", login).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], "password", "{body}");
    }
    app.stop().await;
}

/// Every page of the default order (creation time) moves on, records created within the
/// same microsecond included.
async fn paging_in_the_default_order_advances(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("pages@example.com").await, "access_token");
    let model = json!({ "name": "Note", "fields": [{ "name": "title", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);
    let mut created = Vec::new();
    for i in 0..5 {
        let (status, body) = app.post_with_token("/api/notes", &access, json!({ "title": format!("n{i}") })).await;
        assert_eq!(status, 201, "{body}");
        created.push(body["record"]["id"].as_str().unwrap().to_string());
    }
    for (sort, expected) in [("", created.clone()), ("-created_at", created.iter().rev().cloned().collect())] {
        let mut seen = Vec::new();
        let mut page_token = String::new();
        for _ in 0..10 {
            let path = format!("/api/notes?page_size=1&sort={sort}&page_token={page_token}");
            let (status, body) = app.get_with_token(&path, &access).await;
            assert_eq!(status, 200, "{body}");
            seen.extend(body["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
            page_token = body["next_page_token"].as_str().unwrap().to_string();
            if page_token.is_empty() {
                break;
            }
        }
        assert_eq!(seen, expected, "each record once, in order `{sort}`");
    }
    app.stop().await;
}

/// The longest plural a model may have still names a table, its index and constraints
/// within PostgreSQL's 63 bytes, and every write maps its errors to the field.
async fn a_model_with_the_longest_name_works_end_to_end(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("long-names@example.com").await, "access_token");
    let name = format!("m{}", "k".repeat(57));
    let model = json!({ "name": name, "fields": [
        { "name": format!("code_{}", "y".repeat(58)), "type": "text", "unique": true },
        { "name": "parent", "type": "text" }
    ]});
    let (status, body) = app.post_with_token("/api/v1/models", &access, model).await;
    assert_eq!(status, 201, "{body}");
    let plural = body["model"]["plural"].as_str().unwrap().to_string();
    assert_eq!(plural.len(), 59);
    let code = format!("code_{}", "y".repeat(58));
    let (status, body) = app.post_with_token(&format!("/api/{plural}"), &access, json!({ code.clone(): "A" })).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.post_with_token(&format!("/api/{plural}"), &access, json!({ code.clone(): "A" })).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], code.as_str(), "{body}");
    // A rename keeps the unique rule under the new name, and it is still reported.
    let renamed = format!("ref_{}", "z".repeat(58));
    let change = json!({ "fields": [
        { "name": renamed, "type": "text", "unique": true, "previous_name": code },
        { "name": "parent", "type": "text" }
    ]});
    let response = app.http.put(app.url(&format!("/api/v1/models/{plural}"))).bearer_auth(&access).json(&change);
    let (status, body) = read(response.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.post_with_token(&format!("/api/{plural}"), &access, json!({ renamed.clone(): "A" })).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], renamed.as_str(), "{body}");
    let (status, body) = app.get_with_token(&format!("/api/{plural}?page_size=1"), &access).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

/// `/api/{key}` and `/models/{key}` take a plural or a slug: no model may take a name
/// another model answers to, so a key never reaches the wrong model.
async fn a_plural_and_a_slug_never_name_two_models(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("names@example.com").await, "access_token");
    let goods = json!({ "name": "Item", "plural": "goods", "fields": [{ "name": "title", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, goods).await.0, 201);
    // Its slug would be `goods`, the plural of the first.
    let clash = json!({ "name": "Goods", "plural": "goods_lists", "fields": [{ "name": "x", "type": "text" }] });
    let (status, body) = app.post_with_token("/api/v1/models", &access, clash).await;
    let error = assert_error(status, &body, 409, "already_exists");
    assert_eq!(error["details"][0]["field"], "name", "{body}");
    // Its plural would be `item`, the slug of the first.
    let clash = json!({ "name": "Thing", "plural": "item", "fields": [{ "name": "x", "type": "text" }] });
    let (status, body) = app.post_with_token("/api/v1/models", &access, clash).await;
    assert_error(status, &body, 409, "already_exists");
    let (status, body) = app.get_with_token("/api/v1/models/goods", &access).await;
    assert_eq!((status, body["model"]["name"].as_str()), (200, Some("Item")), "{body}");
    app.stop().await;
}

/// A user model made before a seed version that adds a system model of the same name:
/// the upgrade skips that model and start-up goes on.
async fn a_seed_upgrade_leaves_a_user_model_holding_a_system_name_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = app.register("early@example.com").await;
    let access = token(&body, "access_token");
    let (_, workspace, _) = claims_of(&body);
    // The workspace's first call seeds its system models.
    assert_eq!(app.get_with_token("/api/v1/models", &access).await.0, 200);
    // As if the Prompt system model were new in a later seed version.
    with_db!(&app.db, pool => {
        sqlx::query("DELETE FROM models WHERE workspace_id = $1 AND plural = 'prompts'").bind(Id(workspace)).execute(pool).await.unwrap();
        sqlx::query("UPDATE model_seeds SET version = 0 WHERE workspace_id = $1").bind(Id(workspace)).execute(pool).await.unwrap();
    });
    let mine = json!({ "name": "Prompt", "plural": "prompt_ideas", "fields": [{ "name": "text", "type": "text" }] });
    let (status, body) = app.post_with_token("/api/v1/models", &access, mine).await;
    assert_eq!(status, 201, "{body}");
    kiln_model_svc::seeding::seed_models(&app.db, workspace).await.expect("the upgrade goes on");
    let (status, body) = app.get_with_token("/api/v1/models/prompt", &access).await;
    assert_eq!((status, &body["model"]["plural"]), (200, &json!("prompt_ideas")), "the user's model stays");
    app.stop().await;
}

#[tokio::test]
async fn metrics_label_only_the_methods_kiln_serves() {
    let app = spawn_app(Backend::Sqlite).await;
    for method in ["BREW", "PROPFIND"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.http.request(method, app.url("/healthz")).send().await.unwrap();
    }
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("BREW") && !metrics.contains("PROPFIND"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    app.stop().await;
}

fn nested(depth: usize, object: bool) -> serde_json::Value {
    let mut value = json!("leaf");
    for _ in 0..depth {
        value = if object { json!({ "k": value }) } else { json!([value]) };
    }
    value
}

/// A `json` value may nest 32 levels of arrays or objects (documented); deeper is a 400
/// naming the field on REST and INVALID_ARGUMENT on gRPC, never a 500, however deep.
async fn deeply_nested_json_is_refused_naming_the_field(backend: Backend) {
    use kiln_proto::v1::{CreateEntityRequest, entity_service_client::EntityServiceClient};
    let app = spawn_app(backend).await;
    let access = token(&app.register("deep@example.com").await, "access_token");
    let model = json!({ "name": "Blob", "fields": [{ "name": "body", "type": "json" }] });
    let (status, body) = app.post_with_token("/api/v1/models", &access, model).await;
    assert_eq!(status, 201, "{body}");
    for object in [false, true] {
        let deepest = nested(kiln_common::limits::MAX_JSON_DEPTH, object);
        let (status, body) = app.post_with_token("/api/blobs", &access, json!({ "body": deepest })).await;
        assert_eq!(status, 201, "{body}");
        let id = body["record"]["id"].as_str().unwrap();
        let (status, body) = app.get_with_token(&format!("/api/blobs/{id}"), &access).await;
        assert_eq!((status, &body["record"]["body"]), (200, &deepest));
        for depth in [kiln_common::limits::MAX_JSON_DEPTH + 1, 60, 120] {
            let (status, body) =
                app.post_with_token("/api/blobs", &access, json!({ "body": nested(depth, object) })).await;
            let error = assert_error(status, &body, 400, "invalid_argument");
            assert_eq!(error["details"][0]["field"], "body", "depth {depth}: {body}");
        }
    }
    // Over gRPC: within what decodes, the field is named; past it, still the client's error.
    let mut grpc = EntityServiceClient::new(crate::grpc::channel(app.addr).await);
    for depth in [kiln_common::limits::MAX_JSON_DEPTH + 1, 60] {
        let record = serde_json::from_value(json!({ "body": nested(depth, false) })).unwrap();
        let request = CreateEntityRequest { model: "blobs".into(), record: Some(record) };
        let status = grpc.create_entity(crate::grpc::with_token(request, &access)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "depth {depth}: {status:?}");
    }
    app.stop().await;
}

/// Eight records of 600 kB each would make a 4.8 MB page, past gRPC's 4 MiB message
/// limit: pages end early instead, and paging still yields every record once.
async fn a_page_of_big_records_stays_within_a_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("big@example.com").await, "access_token");
    let model = json!({ "name": "Scan", "fields": [{ "name": "data", "type": "long_text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);
    for i in 0..8 {
        let data = format!("{i}{}", "x".repeat(600_000));
        let (status, body) = app.post_with_token("/api/scans", &access, json!({ "data": data })).await;
        assert_eq!(status, 201, "{}", body["error"]);
    }
    let (mut seen, mut pages, mut page_token) = (std::collections::HashSet::new(), 0, String::new());
    loop {
        let path = format!("/api/scans?page_size=100&page_token={page_token}");
        let (status, body) = app.get_with_token(&path, &access).await;
        assert_eq!(status, 200, "{}", body["error"]);
        for record in body["records"].as_array().unwrap() {
            assert!(seen.insert(record["id"].as_str().unwrap().to_string()));
        }
        pages += 1;
        page_token = body["next_page_token"].as_str().unwrap().to_string();
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 8);
    assert!(pages >= 3, "pages end early by size: {pages}");
    app.stop().await;
}

/// The largest REST body is also the largest gRPC and grpc-web request message.
#[tokio::test]
async fn a_message_larger_than_the_body_limit_is_refused_on_every_protocol() {
    use kiln_proto::v1::{CreateEntityRequest, entity_service_client::EntityServiceClient};
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_body_bytes = 64 * 1024).await;
    let access = token(&app.register("sizes@example.com").await, "access_token");
    let model = json!({ "name": "Page", "fields": [{ "name": "text", "type": "long_text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);
    let big = "x".repeat(100 * 1024);
    let (status, body) = app.post_with_token("/api/pages", &access, json!({ "text": big })).await;
    assert_error(status, &body, 413, "payload_too_large");

    let record = serde_json::from_value(json!({ "text": big })).unwrap();
    let request = CreateEntityRequest { model: "pages".into(), record: Some(record) };
    let mut grpc = EntityServiceClient::new(crate::grpc::channel(app.addr).await);
    let refused = grpc.create_entity(crate::grpc::with_token(request.clone(), &access)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    let small = serde_json::from_value(json!({ "text": "fits" })).unwrap();
    let fits = CreateEntityRequest { model: "pages".into(), record: Some(small) };
    assert!(grpc.create_entity(crate::grpc::with_token(fits, &access)).await.is_ok());

    let call = crate::grpc::grpc_web(&app.http, app.url("/kiln.v1.EntityService/CreateEntity"), &request);
    let response = call.bearer_auth(&access).send().await.unwrap();
    let status = response.headers().get("grpc-status").cloned();
    let text = String::from_utf8_lossy(&response.bytes().await.unwrap()).to_string();
    assert!(status.is_some_and(|s| s == "11") || text.contains("grpc-status:11"), "{text}");
    app.stop().await;
}

/// Everything logged while secrets pass through: no password, token or signing secret, at
/// debug level (the default is info).
#[tokio::test]
async fn secrets_never_reach_the_logs() {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only test that installs a subscriber");

    let app = spawn_app(Backend::Sqlite).await;
    let body = app.register("logged@example.com").await;
    let (access, refresh) = (token(&body, "access_token"), token(&body, "refresh_token"));
    let wrong = json!({ "email": "logged@example.com", "password": "wrong horse 10" });
    assert_eq!(app.post("/api/v1/auth/login", wrong).await.0, 401);
    let (status, refreshed) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": refresh })).await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, _) = app.post("/api/v1/auth/refresh", json!({ "refresh_token": refresh })).await;
    assert_eq!(status, 401, "a reused refresh token");
    assert_eq!(app.get_with_token("/api/v1/auth/profile", &access).await.0, 401);
    app.stop().await;

    let logged = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    assert!(logged.contains("refresh token reused"), "the capture saw the flow: {logged}");
    for secret in [PASSWORD, "wrong horse 10", &access, &refresh, &token(&refreshed, "refresh_token"), JWT_SECRET] {
        assert!(!logged.contains(secret), "a secret was logged: {secret}");
    }
}

/// Signed-in calls spend their user's and their workspace's budgets, on every protocol,
/// whichever user of the workspace makes them.
#[tokio::test]
async fn signed_in_calls_are_limited_per_user_and_per_workspace() {
    use kiln_proto::v1::{ListModelsRequest, model_service_client::ModelServiceClient};
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.user_rate_limit_per_minute = 3;
        c.workspace_rate_limit_per_minute = 0;
    })
    .await;
    let body = app.register("busy@example.com").await;
    let access = token(&body, "access_token");
    let mut grpc = ModelServiceClient::new(crate::grpc::channel(app.addr).await);
    assert_eq!(app.get_with_token("/api/v1/models", &access).await.0, 200);
    assert!(grpc.list_models(crate::grpc::with_token(ListModelsRequest::default(), &access)).await.is_ok());
    assert_eq!(app.get_with_token("/api/v1/auth/profile", &access).await.0, 200);
    let response = app.http.get(app.url("/api/v1/models")).bearer_auth(&access).send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = read(response).await;
    assert_error(status, &body, 429, "resource_exhausted");
    let refused = grpc.list_models(crate::grpc::with_token(ListModelsRequest::default(), &access)).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::ResourceExhausted);
    // Another user has a budget of their own.
    let other = token(&app.register("idle@example.com").await, "access_token");
    assert_eq!(app.get_with_token("/api/v1/models", &other).await.0, 200);
    app.stop().await;

    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.user_rate_limit_per_minute = 0;
        c.workspace_rate_limit_per_minute = 3;
    })
    .await;
    let body = app.register("team@example.com").await;
    let access = token(&body, "access_token");
    let (_, workspace, _) = claims_of(&body);
    assert_eq!(app.get_with_token("/api/v1/models", &access).await.0, 200);
    assert_eq!(app.get_with_token("/api/v1/models", &access).await.0, 200);
    // A call as another user of the same workspace spends the same budget.
    let keys = TokenKeys::new(JWT_SECRET, &[], std::time::Duration::from_secs(900));
    let colleague = keys.issue(uuid::Uuid::now_v7(), workspace, uuid::Uuid::now_v7()).unwrap();
    assert_eq!(app.get_with_token("/api/v1/models", &colleague).await.0, 401, "no such session, but counted");
    let (status, body) = app.get_with_token("/api/v1/models", &access).await;
    assert_error(status, &body, 429, "resource_exhausted");
    app.stop().await;
}

/// Five failures within the hour lock an address, for 30 s doubling per failure; an
/// address without an account locks just the same, so a lockout reveals nothing.
async fn repeated_failed_sign_ins_lock_an_address_alike_for_known_and_unknown(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("target@example.com").await;
    app.register("bystander@example.com").await;
    let mut answers = Vec::new();
    for email in ["target@example.com", "nobody-here@example.com"] {
        let wrong = json!({ "email": email, "password": "wrong horse 10" });
        for _ in 0..5 {
            let (status, body) = app.post("/api/v1/auth/login", wrong.clone()).await;
            assert_error(status, &body, 401, "unauthenticated");
        }
        // Locked now, whatever the password.
        let right = json!({ "email": email, "password": PASSWORD });
        let (status, body) = app.post("/api/v1/auth/login", right).await;
        let error = assert_error(status, &body, 429, "resource_exhausted");
        let message = error["message"].as_str().unwrap().to_string();
        assert!(message.contains("too many failed sign-ins") && message.contains("retry in"), "{message}");
        answers.push((status, message.split(';').next().unwrap().to_string()));
    }
    assert_eq!(answers[0], answers[1], "known and unknown addresses answer alike");
    let (status, _) =
        app.post("/api/v1/auth/login", json!({ "email": "bystander@example.com", "password": PASSWORD })).await;
    assert_eq!(status, 200, "other addresses are not locked");
    app.stop().await;
}

async fn the_workspace_owner_reads_its_security_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.register("owner@example.com").await;
    let access = token(&owner, "access_token");
    let wrong = json!({ "email": "owner@example.com", "password": "wrong horse 10" });
    assert_eq!(app.post("/api/v1/auth/login", wrong).await.0, 401);
    let right = json!({ "email": "owner@example.com", "password": PASSWORD });
    assert_eq!(app.post("/api/v1/auth/login", right).await.0, 200);

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let (status, body) =
            app.get_with_token(&format!("/api/v1/auth/audit?page_size=2&page_token={page_token}"), &access).await;
        assert_eq!(status, 200, "{body}");
        for event in body["events"].as_array().unwrap() {
            seen.push(format!("{}:{}", event["action"].as_str().unwrap(), event["outcome"].as_str().unwrap()));
        }
        page_token = body["next_page_token"].as_str().unwrap().to_string();
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["login:success", "login:bad_password", "register:success"], "newest first");

    // Another user's events stay theirs; a member who is not the owner reads none.
    let stranger = app.register("stranger@example.com").await;
    let (status, body) = app.get_with_token("/api/v1/auth/audit", &token(&stranger, "access_token")).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "only the stranger's own registration: {body}");
    // Made a member of the owner's workspace (as teams will), the stranger signs in there.
    let (_, workspace, _) = claims_of(&owner);
    let (member, _, _) = claims_of(&stranger);
    with_db!(&app.db, pool => {
        sqlx::query("UPDATE users SET workspace_id = $1 WHERE id = $2").bind(Id(workspace)).bind(Id(member)).execute(pool).await.unwrap();
    });
    let (status, signed_in) =
        app.post("/api/v1/auth/login", json!({ "email": "stranger@example.com", "password": PASSWORD })).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(claims_of(&signed_in).1, workspace);
    let (status, body) = app.get_with_token("/api/v1/auth/audit", &token(&signed_in, "access_token")).await;
    assert_error(status, &body, 403, "permission_denied");
    app.stop().await;
}

/// What a hostile client sends gets a clear 4xx naming what is wrong, never a 5xx.
#[tokio::test]
async fn hostile_input_gets_clear_client_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let access = token(&app.register("hostile@example.com").await, "access_token");
    let model =
        json!({ "name": "Note", "fields": [{ "name": "text", "type": "text" }, { "name": "n", "type": "integer" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, model).await.0, 201);

    // Names with control, invisible or right-to-left characters are refused, field named.
    for name in ["No\u{0}te", "Not\u{202e}e", "Note\u{200b}", "\u{1F600}", "a\nb", &"x".repeat(10_000)] {
        let body = json!({ "name": name, "fields": [] });
        let (status, body) = app.post_with_token("/api/v1/models", &access, body).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], "name", "{name:?}: {body}");
    }
    // Values keep any text but NUL, unicode included, and say which field is wrong.
    let text = "é 中文 \u{1F600} \u{202e} tab\there";
    let (status, body) = app.post_with_token("/api/notes", &access, json!({ "text": text })).await;
    assert_eq!((status, body["record"]["text"].as_str()), (201, Some(text)), "{body}");
    for (record, field) in [
        (json!({ "text": "a\u{0}b" }), "text"),
        (json!({ "n": "12x" }), "n"),
        // Past 2^53 a number is not held exactly by every protocol: refused, not rounded.
        (json!({ "n": 9_007_199_254_740_993_u64 }), "n"),
        (json!({ "n": i64::MIN }), "n"),
        (json!({ "n": 1.5 }), "n"),
        (json!({ "n": 1e300 }), "n"),
        (json!({ "text": ["x"] }), "text"),
        (json!({ "unknown\u{0}": 1 }), "unknown\u{0}"),
    ] {
        let (status, body) = app.post_with_token("/api/notes", &access, record.clone()).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], field, "{record}: {body}");
    }
    // Bodies that are not a record, not JSON, or not UTF-8.
    for (body, content_type) in [
        (b"[1, 2]".to_vec(), "application/json"),
        (b"{\"n\": 1e400}".to_vec(), "application/json"),
        (b"{\"text\": \"\xff\xfe\"}".to_vec(), "application/json"),
        (b"{".to_vec(), "application/json"),
        (Vec::new(), "application/json"),
    ] {
        let response = app
            .http
            .post(app.url("/api/notes"))
            .bearer_auth(&access)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, answer) = read(response).await;
        let error = assert_error(status, &answer, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], "body", "{}: {answer}", String::from_utf8_lossy(&body));
    }
    // Paging parameters out of range or forged.
    for (query, field) in [
        ("page_size=99999999999", "page_size"),
        ("page_size=-1", "page_size"),
        ("page_size=1000", "page_size"),
        ("page_token=%00%01", "page_token"),
        (&format!("page_token={}", "A".repeat(20_000)), "page_token"),
        ("sort=%E2%80%AEtext", "sort"),
    ] {
        let (status, body) = app.get_with_token(&format!("/api/notes?{query}"), &access).await;
        let error = assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(error["details"][0]["field"], field, "{query}: {body}");
    }
    app.stop().await;
}
