//! The event bus's throughput and an event's way from a committed change to a consumer,
//! each backend side by side in one run. Rounds interleave the backends and the table
//! reports the median of the rounds:
//!
//! - bus events/s: events published in batches (as a relay does) and consumed and
//!   acknowledged by one consumer group, in process and through RabbitMQ;
//! - outbox → consumer: from an event appended to an outbox (as a committed change does)
//!   to a consumer holding it, through the relay and the bus, p50 and p99, for each
//!   database with each bus.
//!
//! Needs PostgreSQL at 127.0.0.1:5432 (user postgres) and RabbitMQ at 127.0.0.1:5672
//! (guest), or `KILN_TEST_POSTGRES_URL` / `KILN_TEST_AMQP_URL`. `--events N` (default
//! 20000), `--samples N` (default 300), `--rounds N` (default 3).

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use kiln_common::{
    Db,
    events::{
        Event, SharedBus,
        amqp::AmqpBus,
        local::LocalBus,
        outbox::{self, Outbox, Owner},
    },
};
use tokio_util::sync::CancellationToken;

const BUSES: [&str; 2] = ["in process", "RabbitMQ"];
const DATABASES: [&str; 2] = ["SQLite", "PostgreSQL"];

fn amqp_url() -> String {
    std::env::var("KILN_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A fresh bus of `kind`; for RabbitMQ its exchange, to remove after.
async fn bus(kind: &str) -> anyhow::Result<(SharedBus, Option<String>)> {
    Ok(match kind {
        "RabbitMQ" => {
            let exchange = format!("kiln-bench-{}", uuid::Uuid::new_v4().simple());
            (Arc::new(AmqpBus::connect(&amqp_url(), &exchange).await?), Some(exchange))
        }
        _ => (Arc::new(LocalBus::default()), None),
    })
}

async fn remove(exchange: Option<String>) -> anyhow::Result<()> {
    let Some(exchange) = exchange else { return Ok(()) };
    let connection = lapin::Connection::connect(&amqp_url(), Default::default()).await?;
    let channel = connection.create_channel().await?;
    channel.queue_delete(format!("{exchange}.bench").into(), Default::default()).await?;
    channel.exchange_delete(exchange.into(), Default::default()).await?;
    Ok(())
}

/// A database with model-svc's outbox table, fresh.
async fn database(kind: &str, dir: &std::path::Path) -> anyhow::Result<Db> {
    let url = match kind {
        "SQLite" => format!("sqlite://{}", dir.join(format!("{}.db", uuid::Uuid::new_v4().simple())).display()),
        _ => {
            let server = std::env::var("KILN_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let (server, _) = server.rsplit_once('/').context("KILN_TEST_POSTGRES_URL has no database")?;
            format!("{server}/kiln_events_bench")
        }
    };
    let db = Db::connect(&url, Default::default()).await?;
    db.migrate(&kiln_model_svc::MIGRATIONS).await?;
    Ok(db)
}

fn event(n: usize) -> Event {
    let workspace = uuid::Uuid::nil();
    Event::new(workspace, "entity.created", "invoices", &n.to_string(), None)
        .with_after(Some(serde_json::json!({ "number": format!("INV-{n}"), "amount": "12.50" })))
}

/// Events per second through `bus` kind: published in batches of 256, consumed by one group.
async fn throughput(kind: &str, events: usize) -> anyhow::Result<f64> {
    let (bus, exchange) = bus(kind).await?;
    let mut subscription = bus.subscribe("bench").await?;
    let all: Vec<Event> = (0..events).map(event).collect();
    let started = Instant::now();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for batch in all.chunks(256) {
                bus.publish(batch).await?;
            }
            anyhow::Ok(())
        })
    };
    for _ in 0..events {
        let delivery = subscription.next().await.context("the subscription ended")?;
        delivery.ack().await?;
    }
    let elapsed = started.elapsed();
    publisher.await??;
    drop(subscription);
    remove(exchange).await?;
    Ok(events as f64 / elapsed.as_secs_f64())
}

/// (p50, p99) in ms from an append to the consumer holding the event, one at a time.
async fn latency(
    bus_kind: &str,
    database_kind: &str,
    samples: usize,
    dir: &std::path::Path,
) -> anyhow::Result<(f64, f64)> {
    let (bus, exchange) = bus(bus_kind).await?;
    let db = database(database_kind, dir).await?;
    let outbox = Outbox::new(db.clone(), Owner::Model);
    let stop = CancellationToken::new();
    let relay = outbox::relay(outbox.clone(), bus.clone(), stop.clone());
    let mut subscription = bus.subscribe("bench").await?;
    let mut took = Vec::with_capacity(samples);
    for n in 0..samples {
        let started = Instant::now();
        outbox.append(&[event(n)], None).await?;
        let delivery = subscription.next().await.context("the subscription ended")?;
        took.push(started.elapsed());
        delivery.ack().await?;
    }
    stop.cancel();
    relay.await?;
    drop(subscription);
    remove(exchange).await?;
    db.close().await;
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    Ok((at(0.5), at(0.99)))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn flag(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).context("a number after the flag")?.parse().context(name.to_string()),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (events, samples, rounds) = (flag("--events", 20_000)?, flag("--samples", 300)?, flag("--rounds", 3)?);
    let dir = std::env::temp_dir().join(format!("kiln-events-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); BUSES.len()];
    let mut latencies: Vec<Vec<(f64, f64)>> = vec![Vec::new(); BUSES.len() * DATABASES.len()];
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for (i, bus) in BUSES.iter().enumerate() {
            rates[i].push(throughput(bus, events).await?);
        }
        for (i, bus) in BUSES.iter().enumerate() {
            for (j, database) in DATABASES.iter().enumerate() {
                latencies[i * DATABASES.len() + j].push(latency(bus, database, samples, &dir).await?);
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    println!("## Event bus ({events} events, {samples} latency samples, median of {rounds} rounds)\n");
    println!("| bus | events/s (batches of 256, one consumer group) |");
    println!("|---|---:|");
    for (i, bus) in BUSES.iter().enumerate() {
        println!("| {bus} | {:.0} |", median(rates[i].clone()));
    }
    println!("\n| bus | outbox | append → consumer p50 ms | p99 ms |");
    println!("|---|---|---:|---:|");
    for (i, bus) in BUSES.iter().enumerate() {
        for (j, database) in DATABASES.iter().enumerate() {
            let figures = &latencies[i * DATABASES.len() + j];
            let p50 = median(figures.iter().map(|f| f.0).collect());
            let p99 = median(figures.iter().map(|f| f.1).collect());
            println!("| {bus} | {database} | {p50:.2} | {p99:.2} |");
        }
    }
    Ok(())
}
