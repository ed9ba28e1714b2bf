//! The whole loop, as a user runs it: a model, an application of it with the seeded
//! `rust-axum` set, generated through REST, watched over gRPC, built into an image by the
//! real engine (base images made locally, the build downloading crates through the
//! host's network), run as a deployment, and its API used over HTTP in the container:
//! a record created and read back, a bad one refused with field errors. A test binary of
//! its own: the image's compile takes the machine's cores for a while, and the API suite's
//! timing-sensitive tests should not share them.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln_proto::v1::{WatchBuildRequest, build_event, build_service_client::BuildServiceClient};
use serde_json::{Value, json};

#[allow(dead_code)]
#[path = "api/harness.rs"]
mod harness;

use harness::{Backend, spawn_app_with, token};

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn a_generated_service_builds_runs_and_serves_its_models_all_in_one() {
    a_generated_service_builds_runs_and_serves_its_models(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_generated_service_builds_runs_and_serves_its_models_in_the_mesh() {
    a_generated_service_builds_runs_and_serves_its_models(Backend::Mesh).await;
}

async fn a_generated_service_builds_runs_and_serves_its_models(backend: Backend) {
    let made = tokio::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/base-images.sh"))
        .arg("all")
        .status()
        .await
        .unwrap();
    assert!(made.success(), "deploy/base-images.sh all failed");
    let app = spawn_app_with(backend, |config| {
        config.docker_host = None;
        config.build_network = Some("host".into());
    })
    .await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true, "unique": true, "max_length": 20 },
        { "name": "amount", "type": "decimal", "min": 0 },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
    ]});
    let (status, model) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{model}");
    let application = json!({
        "name": "Invoice Service",
        "model_ids": [model["model"]["id"]],
        "config": { "port": 8080, "build_args": {
            "BUILD_IMAGE": "kiln-test/rust:bookworm",
            "RUNTIME_IMAGE": "kiln-test/debian:bookworm-slim",
        } },
    });
    let (status, created) = app.post_with_token("/api/v1/applications", &access, application).await;
    assert_eq!(status, 201, "{created}");
    let application = created["application"]["id"].as_str().unwrap().to_string();
    let (status, generated) =
        app.send(reqwest::Method::POST, &format!("/api/v1/applications/{application}/generate"), &access, None).await;
    assert_eq!(status, 202, "{generated}");
    let build = generated["build"]["id"].as_str().unwrap().to_string();

    // Followed over gRPC to the end.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let mut builds = BuildServiceClient::new(channel);
    let request = WatchBuildRequest { id: build.clone(), after_sequence: 0 };
    let mut stream = builds.watch_build(with_token(request, &access)).await.unwrap().into_inner();
    let (mut last, mut log) = (None, Vec::new());
    let started = Instant::now();
    while let Some(event) = stream.next().await {
        match event.unwrap().event {
            Some(build_event::Event::Log(line)) => log.push(line.message),
            Some(build_event::Event::Build(build)) => last = Some(build),
            None => {}
        }
    }
    let finished = last.expect("a final status");
    assert_eq!(finished.status, "succeeded", "{}\n{finished:?}", log.join("\n"));
    eprintln!("the generated service's image built in {:?}", started.elapsed());

    let (status, ran) = app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/run"), &access, None).await;
    assert_eq!(status, 201, "{ran}");
    let base = ran["deployment"]["url"].as_str().unwrap().to_string();
    let deployment = ran["deployment"]["id"].as_str().unwrap().to_string();
    let list = format!("/api/v1/applications/{application}/deployments");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, listed) = app.get_with_token(&list, &access).await;
        if listed["deployments"][0]["health"] == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "the service never became healthy: {listed}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The service's own API, in its container.
    let http = reqwest::Client::new();
    let record = json!({ "number": "INV-1", "amount": "12.50", "status": "sent" });
    let created = http.post(format!("{base}/invoices")).json(&record).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let got: Value = http
        .get(format!("{base}/invoices/{}", created["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((&got["number"], &got["amount"], &got["status"]), (&json!("INV-1"), &json!("12.50"), &json!("sent")));
    let refused =
        http.post(format!("{base}/invoices")).json(&json!({ "amount": -1, "status": "paid" })).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    let fields: Vec<&str> =
        refused["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["number", "amount", "status"], "{refused}");
    let document: Value = http.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(document["paths"]["/invoices"].is_object());

    let (status, _) = app.send(reqwest::Method::DELETE, &format!("{list}/{deployment}"), &access, None).await;
    assert_eq!(status, 204);
    for tag in &finished.image_tags {
        let _ = tokio::process::Command::new("docker").args(["image", "rm", tag]).output().await;
    }
    app.stop().await;
}
