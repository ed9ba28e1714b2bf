//! The REST edge: the error shape on every failure a client can cause, the OpenAPI
//! document and docs page, health, readiness, metrics, CORS, the auth rate limit, and
//! start-up refusing a bad setting.

use serde_json::json;

use crate::harness::{Backend, PASSWORD, assert_error, read, send_json, spawn_app, spawn_app_with, token};

#[tokio::test]
async fn every_client_mistake_gets_the_json_error_shape() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_body_bytes = 2048).await;

    // (`/api/v1/<name>` is the records route of a model `<name>`: see the entity tests.)
    for path in ["/api/v1/a/b/c", "/api/a/b/c", "/nowhere", "/api/v1/auth/a/b"] {
        let (status, body) = read(app.http.get(app.url(path)).send().await.unwrap()).await;
        let error = assert_error(status, &body, 404, "not_found");
        assert!(error["message"].as_str().unwrap().contains(path), "{body}");
    }

    let (status, body) = read(app.http.delete(app.url("/api/v1/auth/login")).send().await.unwrap()).await;
    assert_error(status, &body, 405, "method_not_allowed");

    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "body");

    let (status, body) = app.post("/api/v1/auth/login", json!({ "email": 42, "password": true })).await;
    assert_error(status, &body, 400, "invalid_argument");

    let (status, body) = app.post("/api/v1/auth/login", json!(["not", "an", "object"])).await;
    assert_error(status, &body, 400, "invalid_argument");

    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let response = app.http.post(app.url("/api/v1/auth/login")).send().await.unwrap();
    let (status, body) = read(response).await;
    assert_error(status, &body, 415, "unsupported_media_type");

    let big = json!({ "email": "a@example.com", "password": "x".repeat(4096) });
    let (status, body) = app.post("/api/v1/auth/login", big).await;
    assert_error(status, &body, 413, "payload_too_large");

    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth("x")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_error(status, &body, 415, "unsupported_media_type");
    app.stop().await;
}

#[tokio::test]
async fn the_auth_routes_are_rate_limited_per_client() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.auth_rate_limit_per_minute = 3).await;
    let login = json!({ "email": "nobody@example.com", "password": "whatever 123" });
    for _ in 0..3 {
        assert_eq!(app.post("/api/v1/auth/login", login.clone()).await.0, 401);
    }
    let response = app.http.post(app.url("/api/v1/auth/login")).json(&login).send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = read(response).await;
    assert_error(status, &body, 429, "resource_exhausted");
    // Only the auth routes are limited.
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn openapi_is_generated_and_every_operation_is_routed() {
    let app = spawn_app(Backend::Sqlite).await;
    for prefix in ["/api", "/api/v1"] {
        let (status, doc) = read(app.http.get(app.url(&format!("{prefix}/openapi.json"))).send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(doc["openapi"], "3.1.0");
        let register = &doc["components"]["schemas"]["RegisterRequest"];
        assert_eq!(register["properties"]["email"]["type"], "string", "{register}");
        assert!(doc["components"]["schemas"]["User"]["properties"]["created_at"]["format"] == "date-time");
        assert!(
            doc["components"]["schemas"]["TokenPair"]["properties"]["access_token"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("JWT")),
            "descriptions come from the proto comments"
        );
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths["/auth/profile"].get("get").is_some() && paths["/auth/profile"].get("put").is_some());
    }

    // Every documented operation answers on its route (no 404/405), i.e. docs and routes agree.
    let (_, doc) = read(app.http.get(app.url("/api/openapi.json")).send().await.unwrap()).await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .http
                .request(method.clone(), app.url(&format!("/api/v1{path}")))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(status != 404 && status != 405, "{method} {path} is documented but answers {status}");
            operations += 1;
        }
    }
    assert_eq!(operations, 62);

    // Called as a signed-in user on real identifiers, no documented operation answers 5xx.
    let email = "routes@example.com";
    let mut access = token(&app.register(email).await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [{ "name": "number", "type": "text" }] });
    let (status, model) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{model}");
    let model_id = model["model"]["id"].as_str().unwrap().to_string();
    let (status, record) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "A-1" })).await;
    assert_eq!(status, 201, "{record}");
    let record_id = record["record"]["id"].as_str().unwrap().to_string();
    // Deletions last, so the calls before them find what they name.
    let mut calls: Vec<(reqwest::Method, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = match path.strip_prefix("/models/") {
            Some(rest) => format!("/models/{}", rest.replace("{id}", &model_id)),
            None => path.replace("{model}", "invoices").replace("{id}", &record_id).replace("{language}", "python"),
        };
        for (method, _) in item.as_object().unwrap() {
            calls.push((reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), concrete.clone()));
        }
    }
    calls.sort_by_key(|(method, _)| *method == reqwest::Method::DELETE);
    let mut succeeded = 0;
    for (method, path) in calls {
        let url = app.url(&format!("/api/v1{path}"));
        let (status, body) = send_json(&app.http, method.clone(), url, &access, Some(json!({}))).await;
        assert!(status < 500, "{method} {path} answers {status} to a signed-in user: {body}");
        succeeded += usize::from((200..300).contains(&status));
        // Signing out ends the token; the calls after it get a fresh one.
        if app.get_with_token("/api/v1/auth/profile", &access).await.0 == 401 {
            let (status, login) = app.post("/api/v1/auth/login", json!({ "email": email, "password": PASSWORD })).await;
            assert_eq!(status, 200, "{login}");
            access = token(&login, "access_token");
        }
    }
    // The rest are refusals of the empty body ({}), each a 4xx with its reason.
    assert_eq!(succeeded, 23);

    let docs = app.http.get(app.url("/api/docs")).send().await.unwrap();
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = docs.text().await.unwrap();
    assert!(html.contains("/auth/register") && html.contains("RegisterRequest"));
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, body) = read(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({ "status": "ok" })));
    let (status, body) = read(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({ "status": "ready" })));

    app.post("/api/v1/auth/login", json!({ "email": "a@example.com", "password": "nope nope 1" })).await;
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("kiln_http_requests_total{")
            && l.contains("route=\"/api/v1/auth/login\"")
            && l.contains("status=\"401\"")),
        "{metrics}"
    );
    // A histogram with buckets (they add up across replicas), not a summary.
    assert!(
        metrics.lines().any(|l| l.starts_with("kiln_http_request_duration_seconds_bucket{")
            && l.contains("route=\"/api/v1/auth/login\"")
            && l.contains("le=\"0.005\"")),
        "{metrics}"
    );
    assert!(!metrics.contains("quantile="), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins_and_exposes_grpc_headers() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.cors_origins = vec!["http://ui.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/kiln.v1.AuthService/Login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web")
            .send()
    };
    let allowed = preflight("http://ui.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "http://ui.example");
    let denied = preflight("http://evil.example").await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));

    let response = app.http.get(app.url("/healthz")).header("origin", "http://ui.example").send().await.unwrap();
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap().to_string();
    assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"), "{exposed}");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve"])
        .env("KILN_HTTP_ADDR", "nowhere")
        .env("KILN_DATA_DIR", std::env::temp_dir().join("kiln-bad-setting"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("KILN_HTTP_ADDR"), "{stderr}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--role", "gateway"])
        .env_remove("KILN_JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("configuration error: KILN_JWT_SECRET:"), "{stderr}");

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_kiln")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for setting in kiln_common::config::SETTINGS {
        assert!(help.contains(setting.env), "{} is not documented in --help", setting.env);
    }
}

#[tokio::test]
async fn a_mesh_role_refuses_unsafe_settings_and_config_check_names_them() {
    let kiln = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
        command.args(args).env_remove("KILN_JWT_SECRET").env_remove("KILN_CORS_ORIGINS");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        (output.status.code(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
    };
    let unsafe_env = [
        ("KILN_JWT_SECRET", "ci-only-secret-ci-only-secret-0123456789"),
        ("KILN_CORS_ORIGINS", "*"),
        ("KILN_HTTP_ADDR", "127.0.0.1:0"),
    ];
    let (code, _, stderr) = kiln(&["serve", "--role", "gateway"], &unsafe_env);
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one line for each: {stderr}");
    assert!(lines[0].starts_with("configuration error: KILN_JWT_SECRET: is an example secret"), "{stderr}");
    assert!(lines[1].starts_with("configuration error: KILN_CORS_ORIGINS: `*`"), "{stderr}");

    let (code, report, _) = kiln(&["config", "check", "--role", "gateway"], &unsafe_env);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("2 unsafe settings") && report.contains("KILN_CORS_ORIGINS: `*`"), "{report}");
    assert!(!report.contains("ci-only-secret"), "{report}");

    let safe = [("KILN_JWT_SECRET", "3f9c0d7a51e24b8896a1c5e07d4f2b6a"), ("KILN_CORS_ORIGINS", "https://kiln.example")];
    let (code, report, _) = kiln(&["config", "check", "--role", "gateway"], &safe);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("nothing unsafe found"), "{report}");
    let (code, _, stderr) = kiln(&["config", "check"], &[("KILN_REQUEST_TIMEOUT", "soon")]);
    assert_eq!(
        (code, stderr.trim_end()),
        (Some(2), "configuration error: KILN_REQUEST_TIMEOUT: `soon` is not a duration like 900s, 15m, 12h or 30d")
    );
}

#[tokio::test]
async fn migrate_brings_the_roles_tables_up_to_date_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("kiln.db").display());
    let migrate = |role: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["migrate", "--role", role])
            .env("KILN_DATABASE_URL", &database)
            .env("KILN_DATA_DIR", dir.path())
            .env("KILN_JWT_SECRET", "3f9c0d7a51e24b8896a1c5e07d4f2b6a")
            .env("KILN_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
            .env_remove("KILN_REDIS_URL")
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
    };
    let (code, stdout, stderr) = migrate("all-in-one");
    assert_eq!((code, stdout.as_str()), (Some(0), "migrated: model, app, build, queue\n"), "{stderr}");
    // Run again, it finds nothing to do; a role migrates only what it owns.
    assert_eq!(migrate("all-in-one").0, Some(0));
    assert_eq!(migrate("app").1, "migrated: app\n");
    let (code, _, stderr) = migrate("gateway");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("the gateway role owns no tables"), "{stderr}");
    let db = sqlx::SqlitePool::connect(&database).await.unwrap();
    for table in ["models", "prompt_versions", "builds", "queue_jobs"] {
        let found: Option<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_optional(&db)
                .await
                .unwrap();
        assert_eq!(found.as_deref(), Some(table), "made by kiln migrate");
    }
    db.close().await;
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("serve")
        .env("KILN_HTTP_ADDR", "127.0.0.1:0")
        .env("KILN_DATA_DIR", dir.path())
        .env("KILN_DATABASE_URL", format!("sqlite://{}", dir.path().join("kiln.db").display()))
        .env("KILN_LOG_FORMAT", "json")
        .env_remove("KILN_JWT_SECRET")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if let Some(addr) = entry["fields"]["http_addr"].as_str() {
                return addr.to_string();
            }
        }
        panic!("kiln exited before it was up");
    })
    .await
    .expect("kiln comes up");
    assert!(dir.path().join("jwt_secret").exists(), "all-in-one generates its secret into the data dir");
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let home = reqwest::get(format!("http://{addr}/")).await.unwrap().text().await.unwrap();
    assert!(home.contains(r#"<meta name="kiln-api""#), "the web UI's page: {home}");
    let healthcheck = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kiln")).args(["healthcheck", "--url", &url]).output().unwrap()
    };
    assert!(healthcheck(format!("http://{addr}")).status.success(), "the container health check passes");
    let down = healthcheck("http://127.0.0.1:1".into());
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("unhealthy: http://127.0.0.1:1"));

    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "{status:?}");
}
