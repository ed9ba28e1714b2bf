//! Applications into builds: generate through REST and gRPC, the build workflow's run, the
//! worker rendering the template set, live logs (server-sent events and WatchBuild),
//! the artifact, cancel, failures that name their template, and builds kept to their
//! workspace. These run without a Docker engine (the harness points at none), so every
//! build skips its image step and says why; `docker.rs` builds images.

use std::{collections::BTreeMap, io::Read};

use futures::StreamExt;
use kiln_proto::v1::{
    GenerateApplicationRequest, GetBuildRequest, GetBuildResponse, WatchBuildRequest,
    application_service_client::ApplicationServiceClient, build_event, build_service_client::BuildServiceClient,
};
use serde_json::{Value, json};

use crate::{
    grpc::{channel, with_token},
    harness::{Backend, TestApp, assert_error, spawn_app, spawn_app_with, token},
};

crate::on_every_backend!(
    generating_renders_the_application_and_skips_the_image_without_docker,
    a_template_that_does_not_render_fails_the_build_naming_it,
    a_queued_build_is_cancelled_at_once,
    generating_needs_the_build_workflow_and_templates,
    builds_stay_in_their_workspace,
    twenty_generates_at_once_each_get_their_own_build,
    a_template_previews_for_an_application_without_a_build,
    a_watch_outlasts_the_request_timeout,
    a_stopping_kiln_ends_the_build_logs_it_streams,
);

#[tokio::test]
async fn a_queued_build_and_a_finished_log_outlive_a_restart_sqlite() {
    a_queued_build_and_a_finished_log_outlive_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_queued_build_and_a_finished_log_outlive_a_restart_postgres() {
    a_queued_build_and_a_finished_log_outlive_a_restart(Backend::Postgres).await;
}

/// A user with a model and an application of it; (access token, application id).
pub async fn application(app: &TestApp, email: &str, template_set: &str) -> (String, String) {
    let access = token(&app.register(email).await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true, "max_length": 20 },
        { "name": "amount", "type": "decimal", "min": 0 },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
    ]});
    let (status, model) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{model}");
    let body = json!({ "name": "Invoice Tracker", "model_ids": [model["model"]["id"]], "template_set": template_set });
    let (status, created) = app.post_with_token("/api/v1/applications", &access, body).await;
    assert_eq!(status, 201, "{created}");
    (access, created["application"]["id"].as_str().unwrap().to_string())
}

/// Generates the application; the 202 body.
pub async fn generate(app: &TestApp, access: &str, application: &str) -> Value {
    let (status, body) =
        app.send(reqwest::Method::POST, &format!("/api/v1/applications/{application}/generate"), access, None).await;
    assert_eq!(status, 202, "{body}");
    body
}

/// The server-sent events of a build's log route until the stream ends (after the final
/// status): (event, data) in order.
pub async fn watch(app: &TestApp, access: &str, build: &str, last_event_id: Option<i64>) -> Vec<(String, Value)> {
    let mut request = app.http.get(app.url(&format!("/api/v1/builds/{build}/logs"))).bearer_auth(access);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let read = tokio::time::timeout(std::time::Duration::from_secs(120), response.text());
    let text = read.await.expect("the build finishes and its stream ends").unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::to_string);
            Some((field("event: ")?, serde_json::from_str(&field("data: ")?).unwrap()))
        })
        .collect()
}

/// The last `build` event: the final status.
pub fn final_build(events: &[(String, Value)]) -> Value {
    events.iter().rev().find(|(event, _)| event == "build").map(|(_, b)| b.clone()).expect("a final build event")
}

/// Files of a .tar.gz, by path.
pub fn untar(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            (entry.path().unwrap().display().to_string(), content)
        })
        .collect()
}

async fn generating_renders_the_application_and_skips_the_image_without_docker(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, application) = application(&app, "ada@example.com", "rust-axum").await;
    let generated = generate(&app, &access, &application).await;
    let build = &generated["build"];
    assert_eq!((&build["status"], &build["number"]), (&json!("queued"), &json!("1")), "{generated}");
    let id = build["id"].as_str().unwrap().to_string();

    let events = watch(&app, &access, &id, None).await;
    let finished = final_build(&events);
    assert_eq!(finished["status"], "succeeded", "{events:?}");
    assert_eq!(finished["image_skipped"], true);
    assert!(finished["image_skipped_reason"].as_str().unwrap().contains("Docker"), "{finished}");
    assert_eq!(finished["file_count"], 12);
    let steps: Vec<(&str, &str)> = finished["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("render", "succeeded"), ("image", "skipped")]);
    let sequences: Vec<i64> = events
        .iter()
        .filter(|(event, _)| event == "log")
        .map(|(_, line)| line["sequence"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>(), "every line once, in order");
    let log: Vec<&str> =
        events.iter().filter(|(e, _)| e == "log").map(|(_, l)| l["message"].as_str().unwrap()).collect();
    assert!(log.iter().any(|line| line.starts_with("rendered 12 files")), "{log:?}");
    assert!(log.iter().any(|line| line.contains("image step skipped")), "{log:?}");
    // A late joiner gets what it has not seen, then the end.
    let late = watch(&app, &access, &id, Some(2)).await;
    assert_eq!(late[0].1["sequence"], "3", "{late:?}");
    assert_eq!(final_build(&late)["status"], "succeeded");

    // The build, its listing and its source tree.
    let (status, got) = app.get_with_token(&format!("/api/v1/builds/{id}"), &access).await;
    assert_eq!((status, &got["build"]["status"]), (200, &json!("succeeded")));
    let (_, listed) = app.get_with_token("/api/v1/builds?status=succeeded", &access).await;
    assert_eq!(listed["builds"].as_array().unwrap().len(), 1, "{listed}");
    let (_, listed) =
        app.get_with_token(&format!("/api/v1/builds?status=failed&application_id={application}"), &access).await;
    assert_eq!(listed["builds"], json!([]));
    let (status, body) = app.get_with_token("/api/v1/builds?status=done", &access).await;
    assert_eq!(assert_error(status, &body, 400, "invalid_argument")["details"][0]["field"], "status");
    let artifact =
        app.http.get(app.url(&format!("/api/v1/builds/{id}/artifact"))).bearer_auth(&access).send().await.unwrap();
    assert_eq!(
        (artifact.status().as_u16(), &artifact.headers()["content-type"]),
        (200, &"application/gzip".parse().unwrap())
    );
    let files = untar(&artifact.bytes().await.unwrap());
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            ".dockerignore",
            "Cargo.toml",
            "Dockerfile",
            "README.md",
            "docker-compose.yml",
            "src/api.rs",
            "src/fields.rs",
            "src/main.rs",
            "src/models/invoice.rs",
            "src/openapi.rs",
            "src/store.rs",
            "src/tests.rs"
        ]
    );
    assert!(files["src/models/invoice.rs"].contains("name: \"invoices\""), "{}", files["src/models/invoice.rs"]);
    assert!(files["Cargo.toml"].contains("name = \"invoice-tracker\""), "{}", files["Cargo.toml"]);

    // The build workflow ran, for real, and its run is recorded.
    let run: uuid::Uuid = generated["workflow_run_id"].as_str().unwrap().parse().unwrap();
    let recorded = kiln_common::with_db_read!(&app.db, pool => {
        sqlx::query_as::<_, (String, String)>("SELECT status, CAST(actions AS TEXT) FROM workflow_runs WHERE id = $1")
            .bind(kiln_common::db::Id(run)).fetch_one(pool).await
    })
    .unwrap();
    assert_eq!(recorded.0, "succeeded");
    let actions: Value = serde_json::from_str(&recorded.1).unwrap();
    assert_eq!((&actions[0]["kind"], &actions[0]["status"]), (&json!("publish_event"), &json!("succeeded")));
    assert_eq!(actions[0]["output"]["payload"]["build_id"], json!(id));

    // Over gRPC: generate, then follow the build's stream to its end.
    let gateway = channel(app.addr).await;
    let mut applications = ApplicationServiceClient::new(gateway.clone());
    let request = GenerateApplicationRequest { id: application.clone() };
    let second = applications.generate_application(with_token(request, &access)).await.unwrap().into_inner();
    let second = second.build.unwrap();
    assert_eq!((second.number, second.status.as_str()), (2, "queued"));
    let mut builds = BuildServiceClient::new(gateway);
    let request = WatchBuildRequest { id: second.id.clone(), after_sequence: 0 };
    let mut stream = builds.watch_build(with_token(request, &access)).await.unwrap().into_inner();
    let mut last_status = String::new();
    let mut lines = 0;
    while let Some(event) = stream.next().await {
        match event.unwrap().event {
            Some(build_event::Event::Log(_)) => lines += 1,
            Some(build_event::Event::Build(build)) => last_status = build.status,
            None => {}
        }
    }
    assert_eq!(last_status, "succeeded");
    assert!(lines >= 3, "{lines}");
    // And over grpc-web.
    let request = GetBuildRequest { id: second.id.clone() };
    let call = crate::grpc::grpc_web(&app.http, app.url("/kiln.v1.BuildService/GetBuild"), &request);
    let (data, trailers) = crate::grpc::frames(&call.bearer_auth(&access).send().await.unwrap().bytes().await.unwrap());
    let got: GetBuildResponse = prost::Message::decode(data[0].as_slice()).unwrap();
    assert_eq!((got.build.unwrap().status.as_str(), trailers.contains("grpc-status:0")), ("succeeded", true));
    app.stop().await;
}

/// A template that parses but does not render (or writes outside the tree) fails the
/// build, naming the template, its line and the reason; the build is not retried.
async fn a_template_that_does_not_render_fails_the_build_naming_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, _) = application(&app, "ada@example.com", "rust-axum").await;
    for (set, output_path, body, expected) in [
        ("broken", "src/{{ model.singular }}.rs", "// ok\n{{ model.no_such_field.x }}", "line 2"),
        ("escape", "../../{{ model.singular }}.rs", "x", "leaves the build's directory"),
    ] {
        let template =
            json!({ "set": set, "name": "Module", "scope": "per_model", "output_path": output_path, "body": body });
        let (status, created) = app.post_with_token("/api/v1/templates", &access, template).await;
        assert_eq!(status, 201, "{created}");
        let (_, models) = app.get_with_token("/api/v1/models?page_size=100", &access).await;
        let invoice =
            models["models"].as_array().unwrap().iter().find(|m| m["plural"] == "invoices").unwrap()["id"].clone();
        let body = json!({ "name": format!("App {set}"), "model_ids": [invoice], "template_set": set });
        let (_, created) = app.post_with_token("/api/v1/applications", &access, body).await;
        let id = created["application"]["id"].as_str().unwrap();
        let build = generate(&app, &access, id).await["build"]["id"].as_str().unwrap().to_string();
        let finished = final_build(&watch(&app, &access, &build, None).await);
        assert_eq!((&finished["status"], &finished["attempts"]), (&json!("failed"), &json!(1)), "{finished}");
        let error = finished["error"].as_str().unwrap();
        assert!(error.contains("template `Module`") && error.contains(expected), "{error}");
    }
    app.stop().await;
}

async fn a_queued_build_is_cancelled_at_once(backend: Backend) {
    // No worker here: the build waits in the queue.
    let app = spawn_app_with(backend, |config| config.build_workers = 0).await;
    let (access, application) = application(&app, "ada@example.com", "rust-axum").await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    let (status, queue) = app.get_with_token("/api/v1/build-queue", &access).await;
    assert_eq!((status, &queue["waiting"]), (200, &json!("1")), "{queue}");
    let (status, cancelled) =
        app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/cancel"), &access, None).await;
    assert_eq!((status, &cancelled["build"]["status"]), (200, &json!("cancelled")), "{cancelled}");
    let (status, body) =
        app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/cancel"), &access, None).await;
    assert!(assert_error(status, &body, 409, "failed_precondition")["message"].as_str().unwrap().contains("cancelled"));
    let events = watch(&app, &access, &build, None).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(final_build(&events)["status"], "cancelled");
    // The queue's counts are in /metrics too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l.starts_with("kiln_build_queue_jobs{state=\"waiting\"}")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no queue gauges in /metrics: {metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.stop().await;
}

async fn generating_needs_the_build_workflow_and_templates(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, application) = application(&app, "ada@example.com", "nothing-here").await;
    let path = format!("/api/v1/applications/{application}/generate");
    let (status, body) = app.send(reqwest::Method::POST, &path, &access, None).await;
    let error = assert_error(status, &body, 409, "failed_precondition");
    assert!(error["message"].as_str().unwrap().contains("`nothing-here` has no templates"), "{body}");
    let (_, workflows) = app.get_with_token("/api/v1/workflows", &access).await;
    let workflow = workflows["records"][0]["id"].as_str().unwrap().to_string();
    let body = json!({ "name": "Shop", "template_set": "rust-axum" });
    let (_, created) = app.post_with_token("/api/v1/applications", &access, body).await;
    let path = format!("/api/v1/applications/{}/generate", created["application"]["id"].as_str().unwrap());
    let disable = Some(json!({ "enabled": false }));
    app.send(reqwest::Method::PATCH, &format!("/api/v1/workflows/{workflow}"), &access, disable).await;
    let (status, body) = app.send(reqwest::Method::POST, &path, &access, None).await;
    assert!(assert_error(status, &body, 409, "failed_precondition")["message"].as_str().unwrap().contains("disabled"));
    app.send(reqwest::Method::DELETE, &format!("/api/v1/workflows/{workflow}"), &access, None).await;
    let (status, body) = app.send(reqwest::Method::POST, &path, &access, None).await;
    assert!(
        assert_error(status, &body, 409, "failed_precondition")["message"].as_str().unwrap().contains("build workflow")
    );
    // No build was left waiting by the refusals.
    let (_, builds) = app.get_with_token("/api/v1/builds?status=queued", &access).await;
    assert_eq!(builds["builds"], json!([]), "{builds}");
    app.stop().await;
}

async fn builds_stay_in_their_workspace(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, application) = application(&app, "ada@example.com", "rust-axum").await;
    let eve = token(&app.register("eve@example.com").await, "access_token");
    let build = generate(&app, &ada, &application).await["build"]["id"].as_str().unwrap().to_string();
    assert_eq!(final_build(&watch(&app, &ada, &build, None).await)["status"], "succeeded");
    for path in [format!("/api/v1/builds/{build}"), format!("/api/v1/builds/{build}/artifact")] {
        let (status, body) = app.get_with_token(&path, &eve).await;
        assert_error(status, &body, 404, "not_found");
    }
    let (status, body) = app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/cancel"), &eve, None).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get_with_token(&format!("/api/v1/builds/{build}/logs"), &eve).await;
    assert_error(status, &body, 404, "not_found");
    let (_, listed) = app.get_with_token("/api/v1/builds", &eve).await;
    assert_eq!(listed["builds"], json!([]));
    let (status, body) = app.get_with_token("/api/v1/builds/not-a-build", &ada).await;
    assert_error(status, &body, 404, "not_found");
    // A build whose image was skipped has nothing to run.
    let (status, body) = app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/run"), &ada, None).await;
    let error = assert_error(status, &body, 409, "failed_precondition");
    assert!(error["message"].as_str().unwrap().contains("no image"), "{body}");
    app.stop().await;
}

/// Twenty generates of one application at once: each answers 202 at once with a build of
/// its own, numbered 1 to 20 without a gap or a repeat, and every one finishes.
async fn twenty_generates_at_once_each_get_their_own_build(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, application) = application(&app, "ada@example.com", "rust-axum").await;
    let path = format!("/api/v1/applications/{application}/generate");
    let calls = (0..20).map(|_| app.send(reqwest::Method::POST, &path, &access, None));
    let answers = futures::future::join_all(calls).await;
    let mut numbers: Vec<i64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 202, "{body}");
            body["build"]["number"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=20).collect::<Vec<_>>());
    for (_, body) in &answers {
        let build = body["build"]["id"].as_str().unwrap();
        assert_eq!(final_build(&watch(&app, &access, build, None).await)["status"], "succeeded");
    }
    app.stop().await;
}

/// All-in-one, the queue is a table of the database: a build queued while no worker runs
/// is built after a restart, and its stored log reads the same after another.
async fn a_queued_build_and_a_finished_log_outlive_a_restart(backend: Backend) {
    let mut app = spawn_app_with(backend, |config| config.build_workers = 0).await;
    let (access, application) = application(&app, "ada@example.com", "rust-axum").await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    app.restart(|config| config.build_workers = 1).await;
    let events = watch(&app, &access, &build, None).await;
    assert_eq!(final_build(&events)["status"], "succeeded", "{events:?}");
    app.restart(|_| {}).await;
    let again = watch(&app, &access, &build, None).await;
    let lines = |events: &[(String, Value)]| events.iter().filter(|(e, _)| e == "log").cloned().collect::<Vec<_>>();
    assert_eq!(lines(&again), lines(&events), "the stored log reads the same after a restart");
    assert_eq!(final_build(&again), final_build(&events));
    assert_eq!(again.len(), lines(&events).len() + 1, "the log, then the build as it ended");
    // And over grpc-web, whose streams the browser reads.
    let request = WatchBuildRequest { id: build.clone(), after_sequence: 0 };
    let call = crate::grpc::grpc_web(&app.http, app.url("/kiln.v1.BuildService/WatchBuild"), &request);
    let body = call.bearer_auth(&access).send().await.unwrap().bytes().await.unwrap();
    let (frames, trailers) = crate::grpc::frames(&body);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let last: kiln_proto::v1::BuildEvent = prost::Message::decode(frames.last().unwrap().as_slice()).unwrap();
    match last.event {
        Some(build_event::Event::Build(build)) => assert_eq!(build.status, "succeeded"),
        other => panic!("the stream ends with the build, not {other:?}"),
    }
    assert_eq!(frames.len(), again.len(), "the same events over grpc-web");
    app.stop().await;
}

/// PreviewTemplate renders one template as a build would, building nothing: per model
/// for a `per_model` template; a context of one's own works too; one that does not fit
/// the template is a 400 naming the field and the line.
async fn a_template_previews_for_an_application_without_a_build(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, application) = application(&app, "ada@example.com", "rust-axum").await;
    let (_, templates) = app.get_with_token("/api/v1/templates?set=rust-axum&page_size=100", &access).await;
    let module = templates["records"].as_array().unwrap().iter().find(|t| t["name"] == "Model module").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/templates/{module}/preview");
    let (status, preview) = app.post_with_token(&path, &access, json!({ "application_id": application })).await;
    assert_eq!(status, 200, "{preview}");
    let files = preview["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["path"], "src/models/invoice.rs");
    assert!(files[0]["content"].as_str().unwrap().contains("name: \"invoices\""), "{preview}");
    let context = json!({ "models": [{ "singular": "thing", "plural": "things", "name": "Thing", "fields": [] }], "application": {} });
    let (status, preview) = app.post_with_token(&path, &access, json!({ "context": context })).await;
    assert_eq!((status, &preview["files"][0]["path"]), (200, &json!("src/models/thing.rs")), "{preview}");
    let (status, body) =
        app.post_with_token(&path, &access, json!({ "context": { "models": [{ "singular": "x" }] } })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(error["details"][0]["field"], "body", "{body}");
    assert!(error["details"][0]["description"].as_str().unwrap().contains("line"), "{body}");
    let (status, body) = app.post_with_token(&path, &access, json!({})).await;
    assert_eq!(assert_error(status, &body, 400, "invalid_argument")["details"][0]["field"], "application_id");
    app.stop().await;
}

/// A build's stream lasts as long as the build, not `KILN_REQUEST_TIMEOUT` (which bounds
/// how long an answer may take to begin): a render of a few seconds watched with a
/// one-second request timeout, over SSE and native gRPC at once.
async fn a_watch_outlasts_the_request_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.request_timeout = std::time::Duration::from_secs(1)).await;
    let (access, _) = application(&app, "ada@example.com", "rust-axum").await;
    let slow = json!({ "set": "slow", "name": "Slow", "scope": "once", "output_path": "slow.txt",
        "body": "{% for i in range(end=100000) %}{% for j in range(end=400) %}{% endfor %}{% endfor %}done" });
    assert_eq!(app.post_with_token("/api/v1/templates", &access, slow).await.0, 201);
    let (_, created) =
        app.post_with_token("/api/v1/applications", &access, json!({ "name": "Slow", "template_set": "slow" })).await;
    let application = created["application"]["id"].as_str().unwrap().to_string();
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let mut builds = BuildServiceClient::new(channel(app.addr).await);
    let grpc = async {
        let request = WatchBuildRequest { id: build.clone(), after_sequence: 0 };
        let mut stream = builds.watch_build(with_token(request, &access)).await.unwrap().into_inner();
        let mut last = None;
        while let Some(event) = stream.next().await {
            if let Some(build_event::Event::Build(build)) = event.unwrap().event {
                last = Some(build.status);
            }
        }
        last
    };
    let (events, last) = futures::join!(watch(&app, &access, &build, None), grpc);
    assert_eq!(final_build(&events)["status"], "succeeded", "{events:?}");
    assert_eq!(last.as_deref(), Some("succeeded"));
    assert!(
        started.elapsed() > std::time::Duration::from_secs(1),
        "the build was quicker than the timeout it must outlast"
    );
    app.stop().await;
}

/// A queued build's log stream stays open until the build ends; a Kiln that stops ends
/// it (a clean end: the client reconnects with Last-Event-ID) instead of draining for as
/// long as it may (here 5 minutes). In the mesh, the gateway stops first.
async fn a_stopping_kiln_ends_the_build_logs_it_streams(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        config.build_workers = 0;
        config.shutdown_timeout = std::time::Duration::from_secs(300);
    })
    .await;
    let (access, application) = application(&app, "ada@example.com", "rust-axum").await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    let url = app.url(&format!("/api/v1/builds/{build}/logs"));
    let response = app.http.get(url).bearer_auth(&access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let stopping = tokio::spawn(app.stop());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), response.text()).await;
    assert!(matches!(ended, Ok(Ok(_))), "the log stream outlived the stop: {ended:?}");
    stopping.await.unwrap();
}
