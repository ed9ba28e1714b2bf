//! The web UI as the gateway serves it: the app's page for every page of the app (deep
//! links too), its files gzipped and cached by their content-addressed names, and the
//! API's JSON errors left as they are for everything else. The `ui` role serves the same
//! files alone, naming the gateway in the page.

use std::io::Read as _;

use crate::harness::{Backend, spawn_app};

#[tokio::test]
async fn the_gateway_serves_the_app_its_files_and_deep_links() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = |path: &'static str| app.http.get(app.url(path)).header("accept", "text/html").send();

    let root = page("/").await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.headers()["cache-control"], "no-cache", "the page is asked for again on every load");
    let html = root.text().await.unwrap();
    let script = html.split("import init from \"/").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_string();
    let wasm = html.split("module_or_path: \"/").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_string();
    assert!(script.starts_with("kiln-ui-") && script.ends_with(".js"), "{html}");

    // Every page of the app loads the same document; the app routes it in the browser.
    for path in ["/login", "/invoices", "/invoices/01a2172c-bce3-73a3-a2b2-c9f4077682a5", "/models/new"] {
        let deep = page(path).await.unwrap();
        assert_eq!(deep.status(), 200, "{path}");
        assert_eq!(deep.text().await.unwrap(), html, "{path}");
    }

    // The module: gzipped for a browser that takes it, kept for good (its name is its content).
    let response =
        app.http.get(app.url(&format!("/{wasm}"))).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/wasm");
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
    let gzipped = response.bytes().await.unwrap();
    let mut module = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..]).read_to_end(&mut module).unwrap();
    assert_eq!(&module[..4], b"\0asm", "a WebAssembly module");
    let plain = app.http.get(app.url(&format!("/{wasm}"))).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none(), "no gzip for a client that did not ask");
    assert_eq!(plain.bytes().await.unwrap().len(), module.len());

    // Not pages: a missing file, an API path, a client that wants JSON.
    for (path, accept) in
        [("/kiln-ui-0000.js", "text/html"), ("/api/v1/a/b/c", "text/html"), ("/invoices", "application/json")]
    {
        let response = app.http.get(app.url(path)).header("accept", accept).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_ui_role_serves_the_app_alone_and_names_the_gateway() {
    let mut config = kiln_common::Config::defaults(kiln_common::config::Role::Ui).unwrap();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.ui_api_url = "http://gateway.example:4000".into();
    let running = kiln::start(config).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let http = reqwest::Client::new();
    let html = http.get(format!("{base}/applications")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(html.status(), 200);
    // The page may talk to the gateway it names, and nowhere else.
    let policy = html.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("connect-src 'self' http://gateway.example:4000;"), "{policy}");
    let html = html.text().await.unwrap();
    assert!(html.contains(r#"<meta name="kiln-api" content="http://gateway.example:4000">"#), "{html}");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let api = http.get(format!("{base}/api/v1/models")).send().await.unwrap();
    assert_eq!(api.status(), 404, "the ui role serves no API");

    // Its container's health check: `kiln healthcheck` with KILN_ROLE=ui asks /healthz.
    let check = |url: String| async move {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
        command.args(["healthcheck", "--url", &url]).env("KILN_ROLE", "ui");
        command.output().await.unwrap()
    };
    assert!(check(base.clone()).await.status.success());
    running.stop().await.unwrap();
    let down = check(base).await;
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("unhealthy: "), "{down:?}");
}
