//! Builds against the real Docker engine (`.ci/run` starts one): the rendered tree built
//! into an image tagged and labelled as documented, its output in the build's log, the
//! image runnable; a Dockerfile the engine refuses fails the build at once; a running
//! build cancelled stops the engine's build. Base images are made locally
//! (`deploy/base-images.sh`): nothing is pulled.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    builds::{final_build, generate, watch},
    harness::{Backend, TestApp, spawn_app_with, token},
};

const BASE_IMAGE: &str = "kiln-test/debian:bookworm-slim";

#[tokio::test]
async fn deployments_are_reconciled_with_the_engine_at_start_up() {
    let dockerfile = "ARG BASE=missing\nFROM ${BASE}\nRUN echo {{ build.id }}\nCMD [\"sleep\", \"600\"]\n";
    let (mut app, access, application) =
        with_templates(Backend::Sqlite, "reconciled", &[("Dockerfile", dockerfile)]).await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    let finished = final_build(&watch(&app, &access, &build, None).await);
    let (status, ran) = app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/run"), &access, None).await;
    assert_eq!(status, 201, "{ran}");
    let (id, container) = (
        ran["deployment"]["id"].as_str().unwrap().to_string(),
        ran["deployment"]["container_id"].as_str().unwrap().to_string(),
    );
    // The container goes behind Kiln's back; the next start finds it gone, before
    // anyone lists deployments.
    docker(&["rm", "-f", &container]).await.unwrap();
    app.restart(|_| {}).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: String = kiln_common::with_db_read!(&app.db, pool => {
            sqlx::query_scalar("SELECT status FROM deployments WHERE id = $1")
                .bind(kiln_common::db::Id(id.parse().unwrap())).fetch_one(pool).await
        })
        .unwrap();
        if status == "missing" {
            break;
        }
        assert!(Instant::now() < deadline, "the deployment is still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = docker(&["image", "rm", "-f", finished["image_id"].as_str().unwrap()]).await;
    app.stop().await;
}

crate::on_every_backend!(
    an_image_is_built_tagged_labelled_and_runs,
    a_built_image_runs_as_a_deployment_until_it_is_removed,
    a_dockerfile_the_engine_refuses_fails_the_build_at_once,
    a_running_build_is_cancelled_within_seconds,
);

/// Makes the local base image if it is missing.
pub async fn base_image() {
    let made = tokio::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/base-images.sh"))
        .arg("runtime")
        .status()
        .await
        .expect("bash runs");
    assert!(made.success(), "deploy/base-images.sh runtime failed");
}

/// `docker` with `args`: its stdout, or the failure.
async fn docker(args: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new("docker").args(args).output().await.map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// Kiln with the local Docker engine, a user, and an application whose template set
/// `set` is the given (output path, body) templates; (app, token, application id).
async fn with_templates(backend: Backend, set: &str, templates: &[(&str, &str)]) -> (TestApp, String, String) {
    base_image().await;
    let app = spawn_app_with(backend, |config| config.docker_host = None).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    for (output_path, body) in templates {
        let template =
            json!({ "set": set, "name": output_path, "scope": "once", "output_path": output_path, "body": body });
        let (status, created) = app.post_with_token("/api/v1/templates", &access, template).await;
        assert_eq!(status, 201, "{created}");
    }
    let application = json!({
        "name": format!("Docker {set}"),
        "template_set": set,
        "config": { "build_args": { "BASE": BASE_IMAGE } },
    });
    let (status, created) = app.post_with_token("/api/v1/applications", &access, application).await;
    assert_eq!(status, 201, "{created}");
    let id = created["application"]["id"].as_str().unwrap().to_string();
    (app, access, id)
}

async fn an_image_is_built_tagged_labelled_and_runs(backend: Backend) {
    let dockerfile = "ARG BASE=missing\nFROM ${BASE}\nCOPY . /app\nRUN echo \"built {{ application.slug }} as build {{ build.number }} ({{ build.id }})\"\nCMD [\"cat\", \"/app/hello.txt\"]\n";
    let templates = [("Dockerfile", dockerfile), ("hello.txt", "Hello from {{ application.name }}")];
    let (app, access, application) = with_templates(backend, "tiny", &templates).await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    let events = watch(&app, &access, &build, None).await;
    let finished = final_build(&events);
    assert_eq!(finished["status"], "succeeded", "{events:?}");
    assert_eq!(finished["image_skipped"], false);
    let log: Vec<&str> =
        events.iter().filter(|(e, _)| e == "log").map(|(_, l)| l["message"].as_str().unwrap()).collect();
    let built = format!("built docker-tiny as build 1 ({build})");
    assert!(log.contains(&built.as_str()), "the engine's output is the build's log: {log:?}");
    let tags: Vec<&str> = finished["image_tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tags.len(), 2);
    assert!(tags[0].starts_with("kiln/") && tags[0].ends_with("/docker-tiny:1"), "{tags:?}");
    assert!(tags[1].ends_with("/docker-tiny:latest"), "{tags:?}");
    assert!(finished["image_size"].as_str().unwrap().parse::<i64>().unwrap() > 0, "{finished}");
    let image = finished["image_id"].as_str().unwrap();
    let labels: Value =
        serde_json::from_str(&docker(&["image", "inspect", "-f", "{{json .Config.Labels}}", image]).await.unwrap())
            .unwrap();
    assert_eq!(labels["dev.kiln.build"], json!(build));
    assert_eq!(labels["dev.kiln.application"], json!(application));
    assert_eq!(docker(&["image", "inspect", "-f", "{{.Id}}", tags[1]]).await.unwrap(), image, ":latest is this image");
    assert_eq!(docker(&["run", "--rm", tags[0]]).await.unwrap(), "Hello from Docker tiny");
    for tag in tags {
        let _ = docker(&["image", "rm", tag]).await;
    }
    app.stop().await;
}

async fn a_dockerfile_the_engine_refuses_fails_the_build_at_once(backend: Backend) {
    let templates = [("Dockerfile", "FROM kiln-test/no-such-image:never\n")];
    let (app, access, application) = with_templates(backend, "refused", &templates).await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    let finished = final_build(&watch(&app, &access, &build, None).await);
    assert_eq!((&finished["status"], &finished["attempts"]), (&json!("failed"), &json!(1)), "{finished}");
    assert!(finished["error"].as_str().unwrap().contains("did not build"), "{finished}");
    app.stop().await;
}

async fn a_running_build_is_cancelled_within_seconds(backend: Backend) {
    // A marker of this test's build, to find its container in the engine.
    let marker = format!("kiln-cancel-{}", uuid::Uuid::new_v4().simple());
    let dockerfile = format!("ARG BASE=missing\nFROM ${{BASE}}\nRUN echo {marker} && sleep 300\n");
    let templates = [("Dockerfile", dockerfile.as_str())];
    let (app, access, application) = with_templates(backend, "slow", &templates).await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    // Running: the engine has printed the marker.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, logs) = app.get_with_token(&format!("/api/v1/builds/{build}"), &access).await;
        let running = docker(&["ps", "--no-trunc", "--format", "{{.Command}}"]).await.unwrap_or_default();
        if running.contains(&marker) {
            break;
        }
        assert!(Instant::now() < deadline, "the build never reached its RUN step: {logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled_at = Instant::now();
    let (status, cancelled) =
        app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/cancel"), &access, None).await;
    assert_eq!((status, &cancelled["build"]["status"]), (200, &json!("cancelled")), "{cancelled}");
    assert_eq!(final_build(&watch(&app, &access, &build, None).await)["status"], "cancelled");
    // The engine's build stops: its container goes, long before the 300 s it would run.
    loop {
        let running = docker(&["ps", "--no-trunc", "--format", "{{.Command}}"]).await.unwrap_or_default();
        if !running.contains(&marker) {
            break;
        }
        assert!(cancelled_at.elapsed() < Duration::from_secs(30), "the engine's build still runs: {running}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

async fn a_built_image_runs_as_a_deployment_until_it_is_removed(backend: Backend) {
    let dockerfile = "ARG BASE=missing\nFROM ${BASE}\nRUN echo {{ build.id }}\nCMD [\"sleep\", \"600\"]\n";
    let (app, access, application) = with_templates(backend, "sleeper", &[("Dockerfile", dockerfile)]).await;
    let build = generate(&app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    let finished = final_build(&watch(&app, &access, &build, None).await);
    assert_eq!(finished["status"], "succeeded", "{finished}");

    let (status, ran) = app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/run"), &access, None).await;
    assert_eq!(status, 201, "{ran}");
    let deployment = &ran["deployment"];
    assert_eq!((&deployment["status"], &deployment["build_id"]), (&json!("running"), &json!(build)));
    // Nothing in this image answers /healthz.
    assert_eq!(deployment["health"], "unhealthy");
    let port = deployment["host_port"].as_i64().unwrap();
    assert!(port > 0 && deployment["url"] == json!(format!("http://127.0.0.1:{port}")), "{deployment}");
    let container = deployment["container_id"].as_str().unwrap().to_string();
    let inspected: Value =
        serde_json::from_str(&docker(&["inspect", "-f", "{{json .}}", &container]).await.unwrap()).unwrap();
    let labels = &inspected["Config"]["Labels"];
    assert_eq!((&labels["dev.kiln.build"], &labels["dev.kiln.deployment"]), (&json!(build), &deployment["id"]));
    let limits = &inspected["HostConfig"];
    assert_eq!(
        (&limits["Memory"], &limits["NanoCpus"], &limits["PidsLimit"]),
        (&json!(536870912), &json!(1000000000), &json!(256))
    );
    assert!(inspected["Config"]["Env"].as_array().unwrap().contains(&json!("PORT=8080")), "{inspected}");

    let list = format!("/api/v1/applications/{application}/deployments");
    let (status, listed) = app.get_with_token(&list, &access).await;
    assert_eq!((status, listed["deployments"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");
    // Gone from the engine behind Kiln's back: the listing says so.
    docker(&["rm", "-f", &container]).await.unwrap();
    let (_, listed) = app.get_with_token(&list, &access).await;
    assert_eq!(listed["deployments"][0]["status"], "missing", "{listed}");
    let id = listed["deployments"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = app.send(reqwest::Method::DELETE, &format!("{list}/{id}"), &access, None).await;
    assert_eq!(status, 204);
    let (_, listed) = app.get_with_token(&list, &access).await;
    assert_eq!(listed["deployments"], json!([]));

    // Another run, then removed through the API: its container goes.
    let (_, ran) = app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/run"), &access, None).await;
    let (id, container) =
        (ran["deployment"]["id"].as_str().unwrap(), ran["deployment"]["container_id"].as_str().unwrap());
    let (status, _) = app.send(reqwest::Method::DELETE, &format!("{list}/{id}"), &access, None).await;
    assert_eq!(status, 204);
    assert!(docker(&["inspect", container]).await.is_err(), "the container was removed");
    let (status, body) = app.send(reqwest::Method::DELETE, &format!("{list}/{id}"), &access, None).await;
    crate::harness::assert_error(status, &body, 404, "not_found");
    // Another workspace neither sees nor runs it.
    let eve = token(&app.register("eve@example.com").await, "access_token");
    let (status, body) = app.send(reqwest::Method::POST, &format!("/api/v1/builds/{build}/run"), &eve, None).await;
    crate::harness::assert_error(status, &body, 404, "not_found");
    let (_, _) = docker(&["image", "rm", "-f", finished["image_id"].as_str().unwrap()])
        .await
        .map(|o| (o, ()))
        .unwrap_or_default();
    app.stop().await;
}
