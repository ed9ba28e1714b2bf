//! The event bus waits out a RabbitMQ restart: the events of changes committed while the
//! broker is down wait in the outbox and leave once it is back, none lost and in order.
//! A test binary of its own: it stops and starts the machine's RabbitMQ (`rabbitmqctl
//! stop_app`, `start_app`), which the tests of any other binary would notice.

use std::{collections::HashSet, time::Duration};

use kiln_common::events::{EventBus as _, amqp::AmqpBus};
use serde_json::json;

#[allow(dead_code)]
#[path = "api/harness.rs"]
mod harness;

use harness::{Backend, amqp_url, remove_exchange, spawn_app_with, token};

fn rabbitmqctl(command: &str) {
    let status = std::process::Command::new("rabbitmqctl").arg(command).status().expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {command}: {status}");
}

#[tokio::test]
async fn no_event_is_lost_when_rabbitmq_restarts_mid_stream() {
    let exchange = format!("kiln-test-{}", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(Backend::Postgres, |config| {
        config.amqp_url = Some(amqp_url());
        config.amqp_exchange = exchange.clone();
    })
    .await;
    let bus = AmqpBus::connect(&amqp_url(), &exchange).await.unwrap();
    let mut events = bus.subscribe("test").await.unwrap();
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [{ "name": "number", "type": "text" }] });
    assert_eq!(app.post_with_token("/api/v1/models", &access, invoice).await.0, 201);

    let create = |n: usize| {
        let (app, access) = (&app, &access);
        async move {
            let (status, body) =
                app.post_with_token("/api/v1/invoices", access, json!({ "number": format!("INV-{n}") })).await;
            assert_eq!(status, 201, "{body}");
        }
    };
    for n in 0..20 {
        create(n).await;
    }
    rabbitmqctl("stop_app");
    // The changes go on while the bus is down; their events wait in the outbox.
    for n in 20..40 {
        create(n).await;
    }
    rabbitmqctl("start_app");

    // Once it is back, every event arrives: some may come twice (taken before the stop,
    // never acknowledged), never out of order the first time each comes.
    let mut seen = HashSet::new();
    let mut numbers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while numbers.len() < 40 {
        let delivery = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of 40 events arrived: {numbers:?}", numbers.len()))
            .expect("the subscription goes on");
        let event = delivery.event.clone();
        // An acknowledgement on the connection that broke is lost; the event comes again.
        let _ = delivery.ack().await;
        if event.kind == "entity.created" && seen.insert(event.id) {
            numbers.push(event.after.as_ref().and_then(|a| a["number"].as_str()).unwrap_or_default().to_string());
        }
    }
    let expected: Vec<String> = (0..40).map(|n| format!("INV-{n}")).collect();
    assert_eq!(numbers, expected);
    drop(events);
    app.stop().await;
    remove_exchange(&exchange, &["test"]).await;
}
