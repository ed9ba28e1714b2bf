//! Traces across processes: the mesh's roles as separate `kiln` processes exporting to
//! an OTLP receiver the test serves. One REST call, one grpc-web call and one build each
//! show as one trace across the processes they touch, continuing the client's own
//! `traceparent`; statements are spans too; the roles' log lines carry the trace id; no
//! record value is in a span or a log line.

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value},
};
use serde_json::{Value, json};

use crate::harness::{
    Backend, JWT_SECRET, PASSWORD, TestDatabase, amqp_url, free_address, read, redis_url, remove_exchange,
};

/// One span as the collector got it.
#[derive(Debug, Clone)]
struct Seen {
    service: String,
    name: String,
    trace_id: String,
    /// Every attribute's value, as text.
    attributes: HashMap<String, String>,
}

/// An OTLP/gRPC trace receiver keeping what it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Seen>>>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Seen {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    attributes: span.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    async fn start(self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    /// The spans of `trace_id` once `wanted` holds of them, or a panic naming what came.
    async fn trace(&self, trace_id: &str, what: &str, wanted: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Seen> =
                self.spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect();
            if wanted(&spans) {
                return spans;
            }
            if Instant::now() > deadline {
                let names: Vec<(String, String)> = spans.iter().map(|s| (s.service.clone(), s.name.clone())).collect();
                panic!("{what}: trace {trace_id} has only {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn has(spans: &[Seen], service: &str, name: &str) -> bool {
    spans.iter().any(|s| s.service == service && s.name == name)
}

/// The mesh as four `kiln` processes, killed on drop; their logs in `logs`.
struct Processes {
    children: Vec<(&'static str, Child)>,
    logs: tempfile::TempDir,
}

impl Processes {
    fn log(&self, role: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{role}.log"))).unwrap_or_default()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `traceparent` a client of its own would send: a trace id the test knows.
fn client_traceparent() -> (String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    (format!("00-{trace_id}-{span_id}-01"), trace_id)
}

#[tokio::test]
async fn one_trace_crosses_the_mesh_for_rest_grpc_web_and_a_build() {
    let receiver = Receiver::default();
    let collector = receiver.clone().start().await;
    let mut database = TestDatabase::new(Backend::Mesh);
    let users = database.service_users().await;
    let (gateway, model, app, build) = (free_address(), free_address(), free_address(), free_address());
    let exchange = format!("kiln-test-{}", uuid::Uuid::new_v4().simple());
    let logs = tempfile::tempdir().unwrap();
    let common: Vec<(&str, String)> = vec![
        ("KILN_JWT_SECRET", JWT_SECRET.into()),
        ("KILN_REDIS_URL", redis_url()),
        ("KILN_REDIS_PREFIX", exchange.clone()),
        ("KILN_AMQP_URL", amqp_url()),
        ("KILN_AMQP_EXCHANGE", exchange.clone()),
        ("KILN_MODEL_SVC_URL", format!("http://{model}")),
        ("KILN_APP_SVC_URL", format!("http://{app}")),
        ("KILN_BUILD_WORKER_URL", format!("http://{build}")),
        ("KILN_OTLP_ENDPOINT", format!("http://{collector}")),
        // No engine answers here: the build renders and skips its image, and ends.
        ("KILN_DOCKER_HOST", "tcp://127.0.0.1:9".into()),
        ("KILN_DATA_DIR", logs.path().display().to_string()),
        ("KILN_GENERATED_DIR", logs.path().join("generated").display().to_string()),
        ("KILN_LOG_FORMAT", "json".into()),
        ("KILN_CORS_ORIGINS", String::new()),
        // The exporter sends what ended every 100 ms rather than every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ];
    let roles = [
        ("app", users.app_url.clone(), app),
        ("model", users.model_url.clone(), model),
        ("build-worker", users.build_url.clone(), build),
        ("gateway", String::new(), gateway),
    ];
    let mut processes = Processes { children: Vec::new(), logs };
    for (role, database_url, addr) in roles {
        let log = std::fs::File::create(processes.logs.path().join(format!("{role}.log"))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command.args(["serve", "--role", role]).envs(common.iter().map(|(k, v)| (*k, v.as_str())));
        command.env("KILN_DATABASE_URL", database_url).env("KILN_GRPC_ADDR", addr.to_string());
        command.env("KILN_HTTP_ADDR", addr.to_string()).stdout(Stdio::null()).stderr(log);
        processes.children.push((role, command.spawn().unwrap()));
    }
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{gateway}{path}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http.get(url("/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "the mesh is not ready: {}", processes.log("gateway"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let response = http
        .post(url("/api/v1/auth/register"))
        .json(&json!({ "email": "trace@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let (status, registered) = read(response).await;
    assert_eq!(status, 201, "{registered}");
    let access = registered["tokens"]["access_token"].as_str().unwrap().to_string();

    // A REST call with the client's own trace: the gateway and model-svc continue it.
    let (traceparent, rest_trace) = client_traceparent();
    let invoice = json!({ "name": "Invoice", "fields": [{ "name": "number", "type": "text" }] });
    let response = http
        .post(url("/api/v1/models"))
        .bearer_auth(&access)
        .header("traceparent", &traceparent)
        .json(&invoice)
        .send()
        .await
        .unwrap();
    let (status, created) = read(response).await;
    assert_eq!(status, 201, "{created}");
    let spans = receiver
        .trace(&rest_trace, "REST", |spans| {
            has(spans, "kiln-gateway", "POST /api/v1/models")
                && has(spans, "kiln-gateway", "kiln.v1.ModelService/CreateModel")
                && has(spans, "kiln-model", "kiln.v1.ModelService/CreateModel")
        })
        .await;
    let server = spans.iter().find(|s| s.name == "POST /api/v1/models").unwrap();
    assert_eq!(server.attributes["http.route"], "/api/v1/models");
    assert_eq!(server.attributes["http.response.status_code"], "201");
    let model_side =
        spans.iter().find(|s| s.service == "kiln-model" && s.name == "kiln.v1.ModelService/CreateModel").unwrap();
    assert_eq!(model_side.attributes["rpc.grpc.status_code"], "0");
    assert_eq!(model_side.attributes["rpc.system"], "grpc");
    assert_eq!(model_side.attributes["rpc.method"], "CreateModel");
    // model-svc's log line of the change carries the trace id.
    let logged = processes.log("model");
    let line = logged.lines().find(|l| l.contains("model created")).unwrap_or_else(|| panic!("{logged}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["trace_id"], rest_trace.as_str(), "{line}");

    // A record's values stay out of spans.
    let secret_value = "INV-do-not-trace-4711";
    let (traceparent, record_trace) = client_traceparent();
    let response = http
        .post(url("/api/v1/invoices"))
        .bearer_auth(&access)
        .header("traceparent", &traceparent)
        .json(&json!({ "number": secret_value }))
        .send()
        .await
        .unwrap();
    assert_eq!(read(response).await.0, 201);
    // The statement is a span of its own, named by the database conventions.
    let spans = receiver
        .trace(&record_trace, "a record's INSERT", |spans| has(spans, "kiln-model", "INSERT ent_invoices"))
        .await;
    let insert = spans.iter().find(|s| s.name == "INSERT ent_invoices").unwrap();
    assert_eq!(insert.attributes["db.system.name"], "postgresql");
    assert_eq!(insert.attributes["db.collection.name"], "ent_invoices");

    // A grpc-web call, as the UI makes it, likewise.
    let (traceparent, web_trace) = client_traceparent();
    let request = kiln_proto::v1::ListModelsRequest::default();
    let response = crate::grpc::grpc_web(&http, url("/kiln.v1.ModelService/ListModels"), &request)
        .header("x-grpc-web", "1")
        .header("traceparent", &traceparent)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    receiver
        .trace(&web_trace, "grpc-web", |spans| {
            has(spans, "kiln-gateway", "kiln.v1.ModelService/ListModels")
                && has(spans, "kiln-model", "kiln.v1.ModelService/ListModels")
        })
        .await;

    // A build: gateway → app-svc → build-worker records it; its event reaches app-svc's
    // workflow over the bus, which queues the job the worker takes: one trace.
    let model_id = created["model"]["id"].clone();
    let body = json!({ "name": "Traced", "model_ids": [model_id], "template_set": "rust-axum" });
    let response = http.post(url("/api/v1/applications")).bearer_auth(&access).json(&body).send().await.unwrap();
    let (status, application) = read(response).await;
    assert_eq!(status, 201, "{application}");
    let application = application["application"]["id"].as_str().unwrap().to_string();
    let (traceparent, build_trace) = client_traceparent();
    let response = http
        .post(url(&format!("/api/v1/applications/{application}/generate")))
        .bearer_auth(&access)
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    let (status, generated) = read(response).await;
    assert_eq!(status, 202, "{generated}");
    receiver
        .trace(&build_trace, "build", |spans| {
            has(spans, "kiln-gateway", "POST /api/v1/applications/{id}/generate")
                && has(spans, "kiln-app", "kiln.v1.ApplicationService/GenerateApplication")
                && spans.iter().any(|s| s.service == "kiln-app" && s.name.starts_with("process build."))
                && has(spans, "kiln-build-worker", "process app_builds")
        })
        .await;
    let logged = processes.log("build-worker");
    assert!(
        logged.lines().any(|l| l.contains("running a build") && l.contains(&build_trace)),
        "the worker's log names the trace: {logged}"
    );

    // Each role's /metrics, over plain HTTP/1.1 on its gRPC port: calls by method, the
    // database pool, how late events are handled.
    let scrape = async |addr: SocketAddr| {
        let response = http.get(format!("http://{addr}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let model_metrics = scrape(model).await;
    let created_once =
        r#"kiln_grpc_server_requests_total{service="kiln.v1.ModelService",method="CreateModel",code="Ok"} 1"#;
    assert!(model_metrics.contains(created_once), "{model_metrics}");
    assert!(model_metrics.contains(r#"kiln_grpc_server_duration_seconds_bucket{service="kiln.v1.ModelService",method="CreateModel",le="0.001"}"#), "{model_metrics}");
    assert!(model_metrics.contains(r#"kiln_db_pool_connections{pool="postgres",state="max"}"#), "{model_metrics}");
    assert!(!model_metrics.contains("grpc.health"), "probes are not counted: {model_metrics}");
    let app_metrics = scrape(app).await;
    assert!(app_metrics.contains(r#"kiln_event_lag_seconds_bucket{group="workflows""#), "{app_metrics}");
    let worker_metrics = scrape(build).await;
    assert!(worker_metrics.contains(r#"kiln_build_queue_jobs{state="waiting"}"#), "{worker_metrics}");
    assert!(worker_metrics.contains(r#"method="OpenBuild",code="Ok"}"#), "{worker_metrics}");

    let all = receiver.spans.lock().unwrap().clone();
    for span in &all {
        let shown = format!("{span:?}");
        assert!(!shown.contains(secret_value) && !shown.contains(JWT_SECRET), "{shown}");
    }
    for role in ["gateway", "model", "app", "build-worker"] {
        let logged = processes.log(role);
        assert!(!logged.contains(secret_value) && !logged.contains(&access), "{role} logged a value: {logged}");
    }
    drop(processes);
    remove_exchange(&exchange, crate::harness::KILN_GROUPS).await;
}
