//! Workflows, end to end: saved only when every setting can run; started by the events
//! of committed changes when their condition holds (and not when it does not, nor when
//! the workflow is disabled), by schedules once per tick across two processes, and by
//! hand; each action's result recorded; failures retried, then recorded; runaway scripts
//! stopped; runs rerun. Requests go to HTTP receivers the tests start.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::{Backend, TestApp, assert_error, spawn_app, spawn_app_with, token};

crate::on_every_backend!(
    an_invoice_over_1000_sends_a_signed_webhook_and_others_do_not,
    a_script_transforms_the_record_that_started_it,
    failed_actions_are_retried_then_recorded_and_a_run_can_be_rerun,
);

/// One request a receiver took.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An HTTP receiver on loopback: it keeps every request, and answers 500 on paths under
/// `/fail`, 200 with `{"ok": true}` elsewhere.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        async fn take(
            State(seen): State<Arc<Mutex<Vec<Received>>>>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, String) {
            let path = uri.path().to_string();
            let failing = path.starts_with("/fail");
            seen.lock().unwrap().push(Received { path, headers, body });
            if failing {
                (StatusCode::INTERNAL_SERVER_ERROR, "the receiver is down".into())
            } else {
                (StatusCode::OK, json!({ "ok": true }).to_string())
            }
        }
        let router = Router::new().fallback(take).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { addr, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn on(&self, path: &str) -> Vec<Received> {
        self.seen.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// The requests to `path` once there are `count`, within a deadline.
    pub async fn until(&self, path: &str, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.on(path);
            if seen.len() >= count {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} requests to {path} within 20 s; saw {}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Kiln on `backend` whose workflows may reach loopback (the receivers).
async fn kiln_reaching_loopback(backend: Backend) -> TestApp {
    spawn_app_with(backend, |config| config.webhook_allow_private = true).await
}

/// A user with an Invoice model (number, amount).
pub async fn with_invoices(app: &TestApp) -> String {
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "amount", "type": "decimal" },
        { "name": "note", "type": "text" }
    ]});
    let (status, made) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{made}");
    access
}

async fn create_workflow(app: &TestApp, access: &str, workflow: Value) -> String {
    let (status, made) = app.post_with_token("/api/v1/workflows", access, workflow).await;
    assert_eq!(status, 201, "{made}");
    made["record"]["id"].as_str().unwrap().to_string()
}

async fn runs(app: &TestApp, access: &str, workflow: &str) -> Vec<Value> {
    let (status, listed) = app.get_with_token(&format!("/api/v1/workflows/{workflow}/runs"), access).await;
    assert_eq!(status, 200, "{listed}");
    listed["runs"].as_array().cloned().unwrap_or_default()
}

/// The run `id` once it has finished, within a deadline.
async fn finished(app: &TestApp, access: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app.get_with_token(&format!("/api/v1/workflow-runs/{id}"), access).await;
        assert_eq!(status, 200, "{body}");
        if body["run"]["status"] != "running" {
            return body["run"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "run {id} finished within 20 s: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Checks a Standard Webhooks signature the way a receiver does.
pub fn signed_by(secret: &str, received: &Received) -> bool {
    let header = |name: &str| received.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(&received.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header("webhook-signature").split(' ').any(|signature| signature == format!("v1,{expected}"))
}

async fn an_invoice_over_1000_sends_a_signed_webhook_and_others_do_not(backend: Backend) {
    let app = kiln_reaching_loopback(backend).await;
    let receiver = Receiver::start().await;
    let access = with_invoices(&app).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let trigger =
        json!({ "kind": "on_event", "events": ["entity.created"], "model": "invoices", "condition": "amount > 1000" });
    let big = create_workflow(
        &app,
        &access,
        json!({
            "name": "Big invoices",
            "trigger": trigger,
            "actions": [{ "name": "tell finance", "kind": "send_webhook", "config": {
                "url": receiver.url("/big"),
                "secret": secret,
                "body": { "number": "{{ record.number }}", "amount": "{{ record.amount }}", "kind": "{{ event.kind }}" }
            }}]
        }),
    )
    .await;
    let disabled = create_workflow(
        &app,
        &access,
        json!({
            "name": "Every invoice, switched off",
            "enabled": false,
            "trigger": { "kind": "on_event", "events": ["entity.*"], "model": "invoices" },
            "actions": [{ "name": "tell", "kind": "http_request", "config": { "url": receiver.url("/disabled") } }]
        }),
    )
    .await;

    for (number, amount) in [("INV-1", "500"), ("INV-2", "1500.5"), ("INV-3", "2000")] {
        let (status, made) =
            app.post_with_token("/api/v1/invoices", &access, json!({ "number": number, "amount": amount })).await;
        assert_eq!(status, 201, "{made}");
    }
    let delivered = receiver.until("/big", 2).await;
    let mut bodies: Vec<Value> = delivered.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    bodies.sort_by_key(|body| body["number"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        bodies,
        [
            json!({ "number": "INV-2", "amount": "1500.5", "kind": "entity.created" }),
            json!({ "number": "INV-3", "amount": "2000", "kind": "entity.created" }),
        ],
        "{backend:?}"
    );
    assert!(delivered.iter().all(|r| signed_by(secret, r)), "every delivery is signed");
    // Tampered, it would not verify.
    let forged = Received { body: Bytes::from_static(b"{\"amount\": 1}"), ..delivered[0].clone() };
    assert!(!signed_by(secret, &forged));

    // Events are taken in order and a run is recorded before the next event is: the
    // runs of INV-3 being there, INV-1's would be too.
    let mut recorded = Vec::new();
    for run in runs(&app, &access, &big).await {
        let run = finished(&app, &access, run["id"].as_str().unwrap()).await;
        assert_eq!((run["status"].as_str(), run["trigger"].as_str()), (Some("succeeded"), Some("on_event")), "{run}");
        let step = &run["steps"][0];
        assert_eq!((step["status"].as_str(), step["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{run}");
        assert_eq!(step["input"]["secret"], "***", "the secret is not shown: {run}");
        // Numbers travel as doubles in a Struct.
        assert_eq!(step["output"]["status"].as_f64(), Some(200.0), "{run}");
        recorded.push(run["input"]["record"]["number"].as_str().unwrap().to_string());
    }
    recorded.sort();
    assert_eq!(recorded, ["INV-2", "INV-3"]);
    assert!(runs(&app, &access, &disabled).await.is_empty(), "a disabled workflow does not fire");
    assert!(receiver.on("/disabled").is_empty());
    app.stop().await;
}

async fn a_script_transforms_the_record_that_started_it(backend: Backend) {
    let app = kiln_reaching_loopback(backend).await;
    let access = with_invoices(&app).await;
    create_workflow(&app, &access, json!({
        "name": "Gross amount",
        "trigger": { "kind": "on_event", "events": ["entity.created"], "model": "invoices" },
        "actions": [
            { "name": "gross", "kind": "script", "config": {
                "source": "const gross = Number(record.amount) * 1.2;\nreturn { gross, note: `gross ${gross.toFixed(2)}` };"
            }},
            { "name": "write back", "kind": "update_record", "config": {
                "model": "invoices", "id": "{{ record.id }}", "record": { "note": "{{ steps.gross.note }}" }
            }}
        ]
    }))
    .await;
    let (status, made) =
        app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1", "amount": "100" })).await;
    assert_eq!(status, 201, "{made}");
    let id = made["record"]["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, invoice) = app.get_with_token(&format!("/api/v1/invoices/{id}"), &access).await;
        assert_eq!(status, 200);
        if invoice["record"]["note"] == "gross 120.00" {
            // Written as the workflow's owner.
            assert_eq!(invoice["record"]["number"], "INV-1", "{backend:?}: the rest is kept");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{backend:?}: the script's result written back: {invoice}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.stop().await;
}

async fn failed_actions_are_retried_then_recorded_and_a_run_can_be_rerun(backend: Backend) {
    let app = kiln_reaching_loopback(backend).await;
    let receiver = Receiver::start().await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let workflow = create_workflow(&app, &access, json!({
        "name": "Flaky receiver",
        "trigger": { "kind": "manual" },
        "actions": [
            { "name": "first", "kind": "http_request", "config": { "url": receiver.url("/ok"), "method": "PUT", "body": { "n": "{{ n }}" } } },
            { "name": "second", "kind": "http_request", "config": { "url": receiver.url("/fail") }, "retries": 2, "backoff_ms": 10 },
            { "name": "never", "kind": "http_request", "config": { "url": receiver.url("/never") } }
        ]
    }))
    .await;
    let (status, started) = app
        .post_with_token(&format!("/api/v1/workflows/{workflow}/execute"), &access, json!({ "input": { "n": 7 } }))
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["run"]["id"].as_str().unwrap().to_string();
    let run = finished(&app, &access, &id).await;
    assert_eq!((run["status"].as_str(), run["trigger"].as_str()), (Some("failed"), Some("manual")), "{run}");
    assert!(run["error"].as_str().unwrap().starts_with("action `second` (http_request): answered 500"), "{run}");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "the run stops at the failed action: {run}");
    assert_eq!((steps[0]["status"].as_str(), steps[0]["input"]["body"]["n"].as_f64()), (Some("succeeded"), Some(7.0)));
    assert_eq!((steps[1]["status"].as_str(), steps[1]["attempts"].as_i64()), (Some("failed"), Some(3)), "{run}");
    assert_eq!(receiver.on("/fail").len(), 3, "{backend:?}: one attempt and two retries");
    assert!(receiver.on("/never").is_empty());

    let (status, again) = app.post_with_token(&format!("/api/v1/workflow-runs/{id}/rerun"), &access, json!({})).await;
    assert_eq!(status, 202, "{again}");
    let rerun = finished(&app, &access, again["run"]["id"].as_str().unwrap()).await;
    assert_eq!((rerun["trigger"].as_str(), rerun["rerun_of"].as_str()), (Some("rerun"), Some(id.as_str())));
    assert_eq!(rerun["input"], run["input"]);
    assert_eq!(receiver.on("/ok").len(), 2);
    let listed: Vec<Value> = runs(&app, &access, &workflow).await.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(listed, [rerun["id"].clone(), json!(id)], "newest first");
    app.stop().await;
}

#[tokio::test]
async fn a_runaway_script_is_stopped_by_its_limits() {
    let app = spawn_app(Backend::Sqlite).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let workflow = create_workflow(&app, &access, json!({
        "name": "Forever",
        "trigger": { "kind": "manual" },
        "actions": [{ "name": "spin", "kind": "script", "config": { "source": "while (true) {}", "timeout_ms": 200 } }]
    }))
    .await;
    let (status, started) =
        app.post_with_token(&format!("/api/v1/workflows/{workflow}/execute"), &access, json!({})).await;
    assert_eq!(status, 202, "{started}");
    let run = finished(&app, &access, started["run"]["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"][0]["error"], "stopped after its time limit of 200 ms", "{run}");
    app.stop().await;
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_across_two_processes() {
    let mut app = spawn_app(Backend::Postgres).await;
    app.start_twin().await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let workflow = create_workflow(&app, &access, json!({
        "name": "Every second",
        "trigger": { "kind": "schedule", "cron": "* * * * * *" },
        "actions": [{ "name": "tick", "kind": "script", "config": { "source": "return { tick: input.schedule.tick };" } }]
    }))
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let fired = runs(&app, &access, &workflow).await;
        if fired.len() >= 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "4 ticks within 30 s; saw {}", fired.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopped by disabling; what fired meanwhile is counted too.
    let disable = Some(json!({ "enabled": false }));
    let (status, _) =
        app.send(reqwest::Method::PATCH, &format!("/api/v1/workflows/{workflow}"), &access, disable).await;
    assert_eq!(status, 200);
    let mut ticks: Vec<String> = runs(&app, &access, &workflow)
        .await
        .iter()
        .map(|run| {
            assert_eq!(run["trigger"], "schedule");
            run["input"]["schedule"]["tick"].as_str().unwrap().to_string()
        })
        .collect();
    let all = ticks.len();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), all, "no tick ran twice: {ticks:?}");
    app.stop().await;
}

#[tokio::test]
async fn workflows_that_cannot_run_are_refused_with_every_reason() {
    let app = spawn_app(Backend::Sqlite).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let broken = json!({
        "name": "Broken",
        "trigger": { "kind": "on_event", "events": ["created"], "condition": "amount >" },
        "actions": [
            { "name": "a", "kind": "teleport" },
            { "name": "b", "kind": "script", "config": { "source": "return (;" } },
            { "name": "c", "kind": "http_request", "config": { "url": "ftp://example.com", "timeout_ms": 0 } }
        ]
    });
    let (status, body) = app.post_with_token("/api/v1/workflows", &access, broken).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    let mut fields: Vec<&str> =
        error["details"].as_array().unwrap().iter().filter_map(|d| d["field"].as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "actions[0].kind",
            "actions[1].config.source",
            "actions[2].config.timeout_ms",
            "actions[2].config.url",
            "trigger.condition",
            "trigger.events",
        ],
        "{body}"
    );
    let (status, body) = app
        .post_with_token(
            "/api/v1/workflows",
            &access,
            json!({ "name": "Bad cron", "trigger": { "kind": "schedule", "cron": "61 * * * *" }, "actions": [] }),
        )
        .await;
    assert_eq!(assert_error(status, &body, 400, "invalid_argument")["details"][0]["field"], "trigger.cron");
    // Other people's workflows and runs are not there.
    let (status, body) = app.get_with_token(&format!("/api/v1/workflow-runs/{}", uuid::Uuid::now_v7()), &access).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get_with_token("/api/v1/workflow-runs/not-an-id", &access).await;
    assert_error(status, &body, 400, "invalid_argument");
    app.stop().await;
}

#[tokio::test]
async fn outgoing_requests_refuse_private_addresses_unless_allowed() {
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let workflow = create_workflow(
        &app,
        &access,
        json!({
            "name": "Inside",
            "trigger": { "kind": "manual" },
            "actions": [{ "name": "reach in", "kind": "http_request", "config": { "url": receiver.url("/inside") } }]
        }),
    )
    .await;
    let (_, started) = app.post_with_token(&format!("/api/v1/workflows/{workflow}/execute"), &access, json!({})).await;
    let run = finished(&app, &access, started["run"]["id"].as_str().unwrap()).await;
    let error = run["steps"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("127.0.0.1 is not a public address"), "{run}");
    assert!(receiver.on("/inside").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_published_job_speaks_for_its_own_workspace_only() {
    let app = spawn_app(Backend::Sqlite).await;
    let registered = app.register("ada@example.com").await;
    let access = token(&registered, "access_token");
    let own = registered["user"]["workspace_id"].as_str().unwrap().to_string();
    let other = uuid::Uuid::now_v7().to_string();
    let workflow = create_workflow(&app, &access, json!({
        "name": "Somebody else's build",
        "trigger": { "kind": "manual" },
        "actions": [{ "name": "queue", "kind": "publish_event", "config": {
            "queue": "app_builds", "payload": { "build_id": uuid::Uuid::now_v7().to_string(), "workspace_id": other }
        }}]
    }))
    .await;
    let (_, started) = app.post_with_token(&format!("/api/v1/workflows/{workflow}/execute"), &access, json!({})).await;
    let run = finished(&app, &access, started["run"]["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["output"]["payload"]["workspace_id"].as_str(), Some(own.as_str()), "{run}");
    app.stop().await;
}
