//! Builds, timed end to end through a real `kiln serve` (all-in-one, SQLite) and the
//! local Docker engine, and printed as a table:
//!
//! - cold model-change → image: the engine's build cache emptied, a generate of the
//!   seeded rust-axum service until its image is built (crates downloaded and compiled);
//! - warm model-change → image: a field added to the model, generate again (the
//!   dependencies' layer reused), the median of `--warm N` (default 3);
//! - render-only burst: `--burst N` (default 20) generates at once with the image step
//!   off (a Kiln without a Docker engine): all queued, rendered and finished, with the
//!   p50 and p99 of generate → succeeded.
//!
//! Needs a Docker engine and the local base images (`deploy/base-images.sh all`).
//! `--kiln PATH` (default target/release/kiln), `--skip-cold`.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

struct Options {
    kiln: String,
    warm: usize,
    burst: usize,
    skip_cold: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options { kiln: "target/release/kiln".into(), warm: 3, burst: 20, skip_cold: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kiln" => options.kiln = args.next().context("--kiln PATH")?,
            "--warm" => options.warm = args.next().context("--warm N")?.parse()?,
            "--burst" => options.burst = args.next().context("--burst N")?.parse()?,
            "--skip-cold" => options.skip_cold = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

/// A Kiln on a free port with its own data; its base URL.
async fn kiln(options: &Options, dir: &std::path::Path, docker: bool) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut command = Command::new(&options.kiln);
    command
        .arg("serve")
        .env("KILN_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("KILN_DATA_DIR", dir.join("data"))
        .env("KILN_DATABASE_URL", format!("sqlite://{}", dir.join("data/kiln.db").display()))
        .env("KILN_GENERATED_DIR", dir.join("generated"))
        .env("KILN_BUILD_NETWORK", "host")
        .env("KILN_BUILD_WORKERS", "2")
        .env("KILN_AUTH_RATE_LIMIT", "100000")
        .env("KILN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if !docker {
        command.env("KILN_DOCKER_HOST", format!("unix://{}", dir.join("no-docker.sock").display()));
    }
    let child = command.spawn().context("starting kiln")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        if Instant::now() > deadline {
            bail!("kiln did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((child, base))
}

struct Session {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Generates the application and waits for the build's end; the time it took.
    async fn build(&self, application: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let generated =
            self.call(reqwest::Method::POST, &format!("/applications/{application}/generate"), None).await?;
        let id = generated["build"]["id"].as_str().context("a build id")?.to_string();
        loop {
            let build = self.call(reqwest::Method::GET, &format!("/builds/{id}"), None).await?;
            match build["build"]["status"].as_str() {
                Some("succeeded") => return Ok(started.elapsed()),
                Some("failed" | "cancelled") => bail!("the build ended {}", build["build"]),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

async fn signed_in(base: &str) -> anyhow::Result<(Session, String, String)> {
    let http = reqwest::Client::new();
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({ "email": email, "password": "correct horse 9" }))
        .send()
        .await?
        .json()
        .await?;
    let token = registered["tokens"]["access_token"].as_str().context("a token")?.to_string();
    let session = Session { http, base: base.to_string(), token };
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "amount", "type": "decimal", "min": 0 },
    ]});
    let model = session.call(reqwest::Method::POST, "/models", Some(invoice)).await?;
    let model_id = model["model"]["id"].as_str().context("a model id")?.to_string();
    let application = json!({
        "name": format!("Bench {}", uuid::Uuid::new_v4().simple()),
        "model_ids": [model_id],
        "config": { "build_args": { "BUILD_IMAGE": "kiln-test/rust:bookworm", "RUNTIME_IMAGE": "kiln-test/debian:bookworm-slim" } },
    });
    let created = session.call(reqwest::Method::POST, "/applications", Some(application)).await?;
    let application = created["application"]["id"].as_str().context("an application id")?.to_string();
    Ok((session, model_id, application))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1).min(samples.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let dir = tempfile_dir()?;
    println!("| measure | value |\n|---|---|");

    let (mut child, base) = kiln(&options, &dir.join("docker"), true).await?;
    let (session, model, application) = signed_in(&base).await?;
    if !options.skip_cold {
        // Every cached layer goes, so the build downloads and compiles everything.
        Command::new("docker").args(["builder", "prune", "-af"]).output().await?;
        let cold = session.build(&application).await?;
        println!("| cold model-change → image | {:.1} s |", cold.as_secs_f64());
    } else {
        session.build(&application).await?;
    }
    let mut warm = Vec::new();
    for n in 0..options.warm {
        // Each round adds one more field, keeping the ones before.
        let mut fields = vec![
            json!({ "name": "number", "type": "text", "required": true }),
            json!({ "name": "amount", "type": "decimal", "min": 0 }),
        ];
        fields.extend((0..=n).map(|k| json!({ "name": format!("note_{k}"), "type": "text" })));
        let fields = json!({ "fields": fields });
        session.call(reqwest::Method::PUT, &format!("/models/{model}"), Some(fields)).await?;
        warm.push(session.build(&application).await?);
    }
    let samples: Vec<String> = warm.iter().map(|d| format!("{:.1}", d.as_secs_f64())).collect();
    println!(
        "| warm model-change → image (median of {}) | {:.1} s ({} s) |",
        warm.len(),
        median(warm.clone()).as_secs_f64(),
        samples.join(", ")
    );
    child.kill().await?;

    let (mut child, base) = kiln(&options, &dir.join("render"), false).await?;
    let (session, _, application) = signed_in(&base).await?;
    let started = Instant::now();
    let builds = (0..options.burst).map(|_| session.build(&application));
    let mut times: Vec<Duration> = futures::future::try_join_all(builds).await?;
    let all = started.elapsed();
    println!("| {} generates at once, render only: all done | {:.2} s |", options.burst, all.as_secs_f64());
    println!(
        "| … each, generate → succeeded, p50 / p99 | {:.0} / {:.0} ms |",
        percentile(&mut times, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut times, 0.99).as_secs_f64() * 1000.0
    );
    child.kill().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("kiln-build-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
