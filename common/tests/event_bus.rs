//! The event bus's guarantees, one suite run against each backend for real: in process,
//! and RabbitMQ (on an exchange of the test's own, removed after).

use std::{collections::HashSet, time::Duration};

use kiln_common::events::{Event, SharedBus, Subscription, amqp::AmqpBus, local::LocalBus};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Local,
    Amqp,
}

fn amqp_url() -> String {
    std::env::var("KILN_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A fresh bus on `backend`; for RabbitMQ its exchange's name, to remove it after.
async fn bus(backend: Backend) -> (SharedBus, Option<String>) {
    match backend {
        Backend::Local => (std::sync::Arc::new(LocalBus::default()), None),
        Backend::Amqp => {
            let exchange = format!("kiln-test-{}", Uuid::new_v4().simple());
            (std::sync::Arc::new(AmqpBus::connect(&amqp_url(), &exchange).await.unwrap()), Some(exchange))
        }
    }
}

/// Removes a test's exchange and its groups' queues from RabbitMQ.
async fn remove(exchange: Option<String>, groups: &[&str]) {
    let Some(exchange) = exchange else { return };
    let connection = lapin::Connection::connect(&amqp_url(), Default::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    for group in groups {
        channel.queue_delete(format!("{exchange}.{group}").into(), Default::default()).await.unwrap();
    }
    channel.exchange_delete(exchange.into(), Default::default()).await.unwrap();
    connection.close(200, "done".into()).await.unwrap();
}

fn event(workspace: Uuid, subject_id: &str, n: usize) -> Event {
    let kind = if n == 0 { "entity.created" } else { "entity.updated" };
    Event::new(workspace, kind, "invoices", subject_id, None).with_after(Some(serde_json::json!({ "n": n })))
}

/// The next delivery's event, acknowledged, within a deadline.
async fn next(subscription: &mut Subscription) -> Event {
    let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an event within 10 s")
        .expect("the subscription goes on");
    let event = delivery.event.clone();
    delivery.ack().await.unwrap();
    event
}

async fn every_group_gets_every_event_in_order(backend: Backend) {
    let (bus, exchange) = bus(backend).await;
    let mut workflows = bus.subscribe("workflows").await.unwrap();
    let mut webhooks = bus.subscribe("webhooks").await.unwrap();
    let workspace = Uuid::new_v4();
    // Two subjects' changes interleaved, in batches as a relay publishes them.
    let events: Vec<Event> = (0..60).map(|n| event(workspace, if n % 2 == 0 { "a" } else { "b" }, n / 2)).collect();
    for batch in events.chunks(7) {
        bus.publish(batch).await.unwrap();
    }
    for subscription in [&mut workflows, &mut webhooks] {
        let mut seen = Vec::new();
        for _ in 0..events.len() {
            seen.push(next(subscription).await);
        }
        assert_eq!(seen, events, "{backend:?}: each group gets every event, in the order published");
    }
    drop((workflows, webhooks));
    remove(exchange, &["workflows", "webhooks"]).await;
}

async fn a_groups_consumers_share_its_events_without_twins(backend: Backend) {
    let (bus, exchange) = bus(backend).await;
    let mut first = bus.subscribe("webhooks").await.unwrap();
    let mut second = bus.subscribe("webhooks").await.unwrap();
    let workspace = Uuid::new_v4();
    let events: Vec<Event> = (0..40).map(|n| event(workspace, &format!("r{n}"), 0)).collect();
    bus.publish(&events).await.unwrap();
    let mut seen = HashSet::new();
    while seen.len() < events.len() {
        // Receiving is cancel-safe; acknowledging is done outside the race.
        let delivery = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                delivery = first.next() => delivery,
                delivery = second.next() => delivery,
            }
        });
        let delivery = delivery.await.expect("an event within 10 s").expect("the subscriptions go on");
        assert!(seen.insert(delivery.event.id), "{backend:?}: an event came to both consumers of a group");
        delivery.ack().await.unwrap();
    }
    assert_eq!(seen, events.iter().map(|e| e.id).collect());
    drop((first, second));
    remove(exchange, &["webhooks"]).await;
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod local { $(#[tokio::test] async fn $test() { super::$test(super::Backend::Local).await } )* }
        mod amqp { $(#[tokio::test] async fn $test() { super::$test(super::Backend::Amqp).await } )* }
    };
}

on_both_backends!(every_group_gets_every_event_in_order, a_groups_consumers_share_its_events_without_twins);

/// RabbitMQ: a delivery its consumer never acknowledged (the consumer crashed) comes
/// again to another consumer of the group, marked as redelivered; what is published while
/// a group has no consumer waits for one.
#[tokio::test]
async fn amqp_redelivers_what_a_crashed_consumer_held_and_keeps_what_came_while_away() {
    let (bus, exchange) = bus(Backend::Amqp).await;
    let mut crashing = bus.subscribe("workflows").await.unwrap();
    let workspace = Uuid::new_v4();
    let held = event(workspace, "a", 0);
    bus.publish(std::slice::from_ref(&held)).await.unwrap();
    let taken = tokio::time::timeout(Duration::from_secs(10), crashing.next()).await.unwrap().unwrap();
    assert_eq!((taken.event.id, taken.redelivered), (held.id, false));
    // Gone without acknowledging: its connection closes.
    drop((taken, crashing));

    let away = event(workspace, "b", 0);
    bus.publish(std::slice::from_ref(&away)).await.unwrap();
    let mut next_one = bus.subscribe("workflows").await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), next_one.next()).await.unwrap().unwrap();
    assert_eq!((again.event.id, again.redelivered), (held.id, true), "the held event comes first, again");
    again.ack().await.unwrap();
    assert_eq!(next(&mut next_one).await.id, away.id, "what came while the group was away waited");
    drop(next_one);
    remove(exchange, &["workflows"]).await;
}

/// A wrong URL or an unreachable broker is said at connect time, naming the setting.
#[tokio::test]
async fn an_unreachable_rabbitmq_is_named_at_connect() {
    let error = AmqpBus::connect("amqp://guest:guest@127.0.0.1:1/%2f", "kiln-test").await.unwrap_err().to_string();
    assert!(error.contains("KILN_AMQP_URL"), "{error}");
}
