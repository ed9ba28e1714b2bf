//! The job queue's throughput and latency, each backend side by side in one run: the
//! table queue on SQLite and on PostgreSQL, and the Redis queue. Rounds interleave the
//! backends (A, B, C, A, B, C, …) and the table reports the median of the rounds:
//!
//! - enqueue: jobs added per second by one producer;
//! - no-op jobs/s: jobs taken and completed per second by 1 and by 4 workers;
//! - enqueue → start: from a job being added to a polling worker holding it, p50 and p99.
//!
//! Needs PostgreSQL at 127.0.0.1:5432 (user postgres) and Redis at 127.0.0.1:6379 (or
//! `KILN_TEST_POSTGRES_URL` / `KILN_TEST_REDIS_URL`). `--jobs N` (default 2000),
//! `--rounds N` (default 3).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use kiln_common::{
    Db,
    queue::{JobQueue, MIGRATIONS, QueueSettings, RedisQueue, TableQueue},
};
use serde_json::json;

const BACKENDS: [&str; 3] = ["SQLite table", "PostgreSQL table", "Redis"];
const LATENCY_SAMPLES: usize = 200;

/// One round's figures for one backend.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    enqueue: f64,
    one_worker: f64,
    four_workers: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn queue(backend: &str, name: &str, dir: &std::path::Path) -> anyhow::Result<Arc<dyn JobQueue>> {
    let settings = QueueSettings::default();
    Ok(match backend {
        "SQLite table" => {
            let db = Db::connect(&format!("sqlite://{}", dir.join("queue.db").display()), Default::default()).await?;
            db.migrate(&MIGRATIONS).await?;
            Arc::new(TableQueue::new(db, name, settings))
        }
        "PostgreSQL table" => {
            let server = std::env::var("KILN_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let (server, _) = server.rsplit_once('/').context("KILN_TEST_POSTGRES_URL has no database")?;
            let db = Db::connect(&format!("{server}/kiln_queue_bench"), Default::default()).await?;
            db.migrate(&MIGRATIONS).await?;
            Arc::new(TableQueue::new(db, name, settings))
        }
        _ => {
            let url = std::env::var("KILN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            Arc::new(RedisQueue::connect(&url, "kiln", name, settings).await?)
        }
    })
}

/// Takes and completes jobs until none is left; returns how many.
async fn drain(queue: Arc<dyn JobQueue>, worker: String) -> anyhow::Result<usize> {
    let mut done = 0;
    while let Some(job) = queue.take(&worker).await? {
        queue.complete(&job).await?;
        done += 1;
    }
    Ok(done)
}

async fn round(backend: &str, jobs: usize, dir: &std::path::Path) -> anyhow::Result<Figures> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let queue = queue(backend, &name, dir).await?;
    let mut figures = Figures::default();
    for workers in [1, 4] {
        let started = Instant::now();
        for n in 0..jobs {
            queue.enqueue(&json!({ "n": n })).await?;
        }
        figures.enqueue = jobs as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        let drained: Vec<_> = (0..workers).map(|w| tokio::spawn(drain(queue.clone(), format!("w{w}")))).collect();
        let mut done = 0;
        for worker in drained {
            done += worker.await??;
        }
        anyhow::ensure!(done == jobs, "{backend}: {done} of {jobs} jobs done");
        let rate = jobs as f64 / started.elapsed().as_secs_f64();
        if workers == 1 { figures.one_worker = rate } else { figures.four_workers = rate }
    }
    // A worker polling every millisecond, as a build worker does when idle.
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let enqueued = Instant::now();
        queue.enqueue(&json!({})).await?;
        let mut poll = tokio::time::interval(Duration::from_millis(1));
        let job = loop {
            if let Some(job) = queue.take("latency").await? {
                break job;
            }
            anyhow::ensure!(enqueued.elapsed() < Duration::from_secs(10), "{backend}: a job was not taken within 10 s");
            poll.tick().await;
        };
        latencies.push(enqueued.elapsed().as_secs_f64() * 1000.0);
        queue.complete(&job).await?;
    }
    latencies.sort_by(f64::total_cmp);
    figures.p50_ms = latencies[latencies.len() / 2];
    figures.p99_ms = latencies[latencies.len() * 99 / 100];
    Ok(figures)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn option(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).context("a number after the option")?.parse().context("a number"),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let jobs = option(&args, "--jobs", 2000)?;
    let rounds = option(&args, "--rounds", 3)?.max(1);
    let dir = std::env::temp_dir().join(format!("kiln-queue-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); BACKENDS.len()];
    for _ in 0..rounds {
        for (i, backend) in BACKENDS.iter().enumerate() {
            results[i].push(round(backend, jobs, &dir).await?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("Job queue, {jobs} jobs, median of {rounds} interleaved rounds\n");
    println!("| backend | enqueue/s | no-op jobs/s, 1 worker | no-op jobs/s, 4 workers | enqueue → start p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for (backend, figures) in BACKENDS.iter().zip(&results) {
        let m = |f: fn(&Figures) -> f64| median(figures.iter().map(f).collect());
        println!(
            "| {backend} | {:.0} | {:.0} | {:.0} | {:.2} ms | {:.2} ms |",
            m(|f| f.enqueue),
            m(|f| f.one_worker),
            m(|f| f.four_workers),
            m(|f| f.p50_ms),
            m(|f| f.p99_ms)
        );
    }
    Ok(())
}
