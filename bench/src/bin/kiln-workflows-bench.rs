//! A workflow's trigger → action latency through a real `kiln serve` (all-in-one, on
//! SQLite and on PostgreSQL side by side, rounds interleaved): a record is created over
//! REST, its `entity.created` event starts an `on_event` workflow whose condition holds
//! (`amount > 1000`), and its `http_request` action reaches a receiver in this process.
//! Each sample is the time from sending the create to the receiver holding the request
//! (commit, outbox, relay, bus, condition, run record, request); the table gives p50 and
//! p99 per database over every round.
//!
//! Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and `psql`. `--kiln PATH`
//! (default target/release/kiln), `--samples N` per round (default 200), `--rounds N`
//! (default 3).

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
    sync::oneshot,
};

const DATABASES: [&str; 2] = ["SQLite", "PostgreSQL"];
const PG: &str = "postgres://postgres@127.0.0.1:5432";

struct Options {
    kiln: String,
    samples: usize,
    rounds: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options { kiln: "target/release/kiln".into(), samples: 200, rounds: 3 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kiln" => options.kiln = args.next().context("--kiln PATH")?,
            "--samples" => options.samples = args.next().context("--samples N")?.parse()?,
            "--rounds" => options.rounds = args.next().context("--rounds N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

/// Who is waiting for which request, by the number the request carries.
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

/// A receiver on loopback: each request's JSON body names a number; the one waiting for
/// it is told when the request arrived.
async fn receiver(waiting: Waiting) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let waiting = waiting.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(read) = socket.read(&mut chunk).await else { return };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                    let length = head
                        .lines()
                        .find_map(|line| {
                            line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    let arrived = Instant::now();
                    let number = serde_json::from_str::<Value>(&body[..length])
                        .ok()
                        .and_then(|v| v["n"].as_str().map(str::to_string));
                    if let Some(waiter) = number.and_then(|n| waiting.lock().ok()?.remove(&n)) {
                        let _ = waiter.send(arrived);
                    }
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")
                        .await;
                    buffer.clear();
                }
            });
        }
    });
    Ok(url)
}

/// A Kiln on a free port on `database`, its workflows allowed to reach loopback.
async fn kiln(options: &Options, dir: &std::path::Path, database: &str) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(&options.kiln)
        .arg("serve")
        .env("KILN_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("KILN_DATA_DIR", dir.join("data"))
        .env("KILN_DATABASE_URL", database)
        .env("KILN_GENERATED_DIR", dir.join("generated"))
        .env("KILN_DOCKER_HOST", format!("unix://{}", dir.join("no-docker.sock").display()))
        .env("KILN_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("KILN_AUTH_RATE_LIMIT", "100000")
        .env("KILN_USER_RATE_LIMIT", "0")
        .env("KILN_WORKSPACE_RATE_LIMIT", "0")
        .env("KILN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting kiln")?;
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

async fn call(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let response = http.post(format!("{base}/api/v1{path}")).bearer_auth(token).json(&body).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{path} answered {status}: {body}");
    }
    Ok(body)
}

/// A signed-in user with an Invoice model and the workflow under test; the token.
async fn prepared(http: &reqwest::Client, base: &str, hook: &str) -> anyhow::Result<String> {
    let registered: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({ "email": "bench@example.com", "password": "correct horse 9" }))
        .send()
        .await?
        .json()
        .await?;
    let token = registered["tokens"]["access_token"].as_str().context("a token")?.to_string();
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "amount", "type": "decimal" },
    ]});
    call(http, base, &token, "/models", invoice).await?;
    let workflow = json!({
        "name": "Big invoices",
        "trigger": { "kind": "on_event", "events": ["entity.created"], "model": "invoices", "condition": "amount > 1000" },
        "actions": [{ "name": "tell", "kind": "http_request", "config": { "url": hook, "body": { "n": "{{ record.number }}" } } }],
    });
    call(http, base, &token, "/workflows", workflow).await?;
    Ok(token)
}

/// `samples` creates, one after the other; each one's create → action time.
async fn measure(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    waiting: &Waiting,
    prefix: &str,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut taken = Vec::with_capacity(samples);
    for i in 0..samples {
        let number = format!("{prefix}-{i}");
        let (tell, told) = oneshot::channel();
        waiting.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(number.clone(), tell);
        let sent = Instant::now();
        call(http, base, token, "/invoices", json!({ "number": number, "amount": "2000" })).await?;
        let arrived = tokio::time::timeout(Duration::from_secs(30), told).await.context("the action within 30 s")??;
        taken.push(arrived - sent);
    }
    Ok(taken)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1).min(samples.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let dir = std::env::temp_dir().join(format!("kiln-workflows-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let waiting: Waiting = Arc::default();
    let hook = receiver(waiting.clone()).await?;
    let http = reqwest::Client::new();
    let pg_name = format!("kiln_bench_wf_{}", uuid::Uuid::new_v4().simple());
    let mut running = Vec::new();
    for database in DATABASES {
        let url = match database {
            "SQLite" => format!("sqlite://{}", dir.join("sqlite/data/kiln.db").display()),
            _ => format!("{PG}/{pg_name}"),
        };
        let (child, base) = kiln(&options, &dir.join(database.to_lowercase()), &url).await?;
        let token = prepared(&http, &base, &hook).await?;
        running.push((database, child, base, token, Vec::new()));
    }
    for round in 0..options.rounds {
        for (database, _, base, token, samples) in running.iter_mut() {
            let prefix = format!("{database}-{round}");
            samples.extend(measure(&http, base, token, &waiting, &prefix, options.samples).await?);
        }
    }
    println!("| database (all-in-one, in-process bus) | create → action p50 | p99 | samples |\n|---|---|---|---|");
    for (database, child, _, _, mut samples) in running {
        let (p50, p99) = (percentile(&mut samples, 0.50), percentile(&mut samples, 0.99));
        println!(
            "| {database} | {:.2} ms | {:.2} ms | {} |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            samples.len()
        );
        drop(child);
    }
    let _ = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-c",
            &format!("DROP DATABASE IF EXISTS \"{pg_name}\" WITH (FORCE)"),
        ])
        .stdout(Stdio::null())
        .status()
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
