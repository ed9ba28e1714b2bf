//! A build worker killed (SIGKILL) in the middle of a build: the build is not lost. The
//! mesh runs in this process but for the worker, a real `kiln serve --role build-worker`
//! child; once it is killed, its job's lease runs out and another worker takes the build
//! again, as a new attempt, after the log so far; the killed worker's engine build goes.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use kiln_common::config::Role;
use serde_json::{Value, json};

use crate::{
    builds::{final_build, generate, watch},
    harness::{Backend, JWT_SECRET, TestDatabase, free_address, read, redis_url, test_config, token},
};

async fn running_containers() -> String {
    let output = tokio::process::Command::new("docker")
        .args(["ps", "--no-trunc", "--format", "{{.Command}}"])
        .output()
        .await
        .expect("docker runs");
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Polls `check` until it answers, or fails naming `what` after `limit`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_build_whose_worker_is_killed_is_taken_again_by_another() {
    crate::docker::base_image().await;
    let mut database = TestDatabase::new(Backend::Mesh);
    let users = database.service_users().await;
    let (app_addr, model_addr, build_addr) = (free_address(), free_address(), free_address());
    let prefix = format!("kiln-test-{}", uuid::Uuid::new_v4().simple());
    let mut config = test_config(Role::App, &database);
    config.app_svc_url = format!("http://{app_addr}");
    config.model_svc_url = format!("http://{model_addr}");
    config.build_worker_url = format!("http://{build_addr}");
    config.redis_url = Some(redis_url());
    config.redis_prefix = prefix.clone();
    config.build_lease = Duration::from_secs(2);
    config.docker_host = None;
    let role = |role: Role, url: &str, addr| kiln_common::Config {
        role,
        database_url: url.to_string(),
        grpc_addr: addr,
        ..config.clone()
    };
    let app = kiln::start(role(Role::App, &users.app_url, app_addr)).await.unwrap();
    let model = kiln::start(role(Role::Model, &users.model_url, model_addr)).await.unwrap();
    let gateway = kiln::start(role(Role::Gateway, "", config.grpc_addr)).await.unwrap();

    let (generated_child, data_dir) = (database.dir.join("generated-child"), database.dir.clone());
    // The first worker: another process, to be killed.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--role", "build-worker"])
        .env("KILN_DATABASE_URL", &users.build_url)
        .env("KILN_GRPC_ADDR", build_addr.to_string())
        .env("KILN_APP_SVC_URL", &config.app_svc_url)
        .env("KILN_REDIS_URL", redis_url())
        .env("KILN_REDIS_PREFIX", &prefix)
        .env("KILN_AMQP_URL", config.amqp_url.clone().unwrap_or_default())
        .env("KILN_AMQP_EXCHANGE", &config.amqp_exchange)
        .env("KILN_JWT_SECRET", JWT_SECRET)
        .env("KILN_BUILD_LEASE", "2s")
        .env("KILN_BUILD_WORKERS", "1")
        .env("KILN_GENERATED_DIR", &generated_child)
        .env("KILN_DATA_DIR", &data_dir)
        .env_remove("KILN_DOCKER_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the build worker starts");
    let http = reqwest::Client::new();
    let base = format!("http://{}", gateway.http_addr.unwrap());
    until("the child worker serving", Duration::from_secs(30), || async {
        let ready = http.get(format!("{base}/readyz")).send().await.ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;

    let mut test_app = crate::harness::TestApp::of(vec![app, model, gateway], database).await;
    let access = token(&test_app.register("ada@example.com").await, "access_token");
    let marker = format!("kiln-redelivery-{}", uuid::Uuid::new_v4().simple());
    let dockerfile = format!("ARG BASE=missing\nFROM ${{BASE}}\nRUN echo {marker} && sleep 300\n");
    let template = json!({ "set": "slow", "name": "Dockerfile", "scope": "once", "output_path": "Dockerfile", "body": dockerfile });
    assert_eq!(test_app.post_with_token("/api/v1/templates", &access, template).await.0, 201);
    let body = json!({ "name": "Slow", "template_set": "slow", "config": { "build_args": { "BASE": "kiln-test/debian:bookworm-slim" } } });
    let (_, created) = test_app.post_with_token("/api/v1/applications", &access, body).await;
    let application = created["application"]["id"].as_str().unwrap().to_string();
    let build = generate(&test_app, &access, &application).await["build"]["id"].as_str().unwrap().to_string();
    until("the first attempt's engine build", Duration::from_secs(60), || async {
        running_containers().await.contains(&marker).then_some(())
    })
    .await;

    child.kill().await.expect("SIGKILL");
    test_app.add_role(kiln::start(role(Role::BuildWorker, &users.build_url, build_addr)).await.unwrap());
    let path = format!("/api/v1/builds/{build}");
    let retaken: Value = until("the build taken again", Duration::from_secs(60), || async {
        let (_, body) = test_app.get_with_token(&path, &access).await;
        (body["build"]["attempts"] == 2 && body["build"]["status"] == "building").then_some(body)
    })
    .await;
    assert_eq!(retaken["build"]["status"], "building");
    // One engine build runs: the killed worker's went with its connection.
    until("one engine build of this job", Duration::from_secs(30), || async {
        (running_containers().await.matches(&marker).count() == 1).then_some(())
    })
    .await;
    let (status, _) = read(
        test_app
            .http
            .post(test_app.url(&format!("/api/v1/builds/{build}/cancel")))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let events = watch(&test_app, &access, &build, None).await;
    assert_eq!(final_build(&events)["status"], "cancelled");
    let lines: Vec<(i64, String)> = events
        .iter()
        .filter(|(e, _)| e == "log")
        .map(|(_, l)| (l["sequence"].as_str().unwrap().parse().unwrap(), l["message"].as_str().unwrap().to_string()))
        .collect();
    let sequences: Vec<i64> = lines.iter().map(|(s, _)| *s).collect();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>(), "one log, in order: {lines:?}");
    assert!(lines.iter().any(|(_, m)| m.starts_with("attempt 2 on worker")), "{lines:?}");
    until("the cancelled engine build gone", Duration::from_secs(30), || async {
        (!running_containers().await.contains(&marker)).then_some(())
    })
    .await;
    test_app.stop().await;
}
