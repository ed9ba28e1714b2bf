//! Domain events: every committed change of a record, of a user model (model-svc's
//! outbox) or of a system kind (app-svc's), leaves as one event through its owner's
//! outbox and the bus, in the order of the changes, with the actor and the record before
//! and after; a refused change leaves none. On every backend, with RabbitMQ as the bus
//! (all-in-one takes it when `KILN_AMQP_URL` is set), on an exchange of the test's own.

use std::time::Duration;

use kiln_common::events::{Event, EventBus as _, Subscription, amqp::AmqpBus};
use serde_json::{Value, json};

use crate::harness::{Backend, amqp_url, remove_exchange, spawn_app_with, token};

crate::on_every_backend!(
    committed_record_changes_leave_as_events_in_order,
    model_changes_leave_as_events,
    a_builds_end_leaves_as_an_event,
);

/// The next event, acknowledged, within a deadline.
async fn next_event(events: &mut Subscription) -> Event {
    let delivery = tokio::time::timeout(Duration::from_secs(15), events.next())
        .await
        .expect("an event within 15 s")
        .expect("the subscription goes on");
    let event = delivery.event.clone();
    delivery.ack().await.unwrap();
    event
}

/// Kiln on `backend` with RabbitMQ as its bus, and a consumer group of the test's own on
/// it (subscribed before anything happens, so it gets every event).
async fn with_bus(backend: Backend) -> (crate::harness::TestApp, Subscription, String) {
    let exchange = format!("kiln-test-{}", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(backend, |config| {
        config.amqp_url = Some(amqp_url());
        config.amqp_exchange = exchange.clone();
    })
    .await;
    let bus = AmqpBus::connect(&amqp_url(), &exchange).await.unwrap();
    let events = bus.subscribe("test").await.unwrap();
    (app, events, exchange)
}

async fn model_changes_leave_as_events(backend: Backend) {
    let (app, mut events, exchange) = with_bus(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [{ "name": "number", "type": "text" }] });
    let (status, made) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{made}");
    let changed = json!({ "fields": [{ "name": "number", "type": "text" }, { "name": "note", "type": "long_text" }] });
    let (status, _) = app.send(reqwest::Method::PUT, "/api/v1/models/invoices", &access, Some(changed)).await;
    assert_eq!(status, 200);
    let (status, _) =
        app.send(reqwest::Method::DELETE, "/api/v1/models/invoices?confirm_data_loss=true", &access, None).await;
    assert_eq!(status, 204);

    let seen = [next_event(&mut events).await, next_event(&mut events).await, next_event(&mut events).await];
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["model.created", "model.changed", "model.deleted"], "{backend:?}");
    let id = made["model"]["id"].as_str().unwrap();
    assert!(seen.iter().all(|e| e.subject == "models" && e.subject_id == id), "{seen:?}");
    let version = |image: &Option<Value>| image.as_ref().map(|m| m["version"].clone());
    assert_eq!((version(&seen[0].before), version(&seen[0].after)), (None, Some(json!(1))));
    assert_eq!((version(&seen[1].before), version(&seen[1].after)), (Some(json!(1)), Some(json!(2))));
    assert_eq!((version(&seen[2].before), version(&seen[2].after)), (Some(json!(2)), None));
    drop(events);
    app.stop().await;
    remove_exchange(&exchange, &["test"]).await;
}

async fn a_builds_end_leaves_as_an_event(backend: Backend) {
    let (app, mut events, exchange) = with_bus(backend).await;
    let (access, application) = crate::builds::application(&app, "ada@example.com", "rust-axum").await;
    let generated = crate::builds::generate(&app, &access, &application).await;
    let build = generated["build"]["id"].as_str().unwrap().to_string();
    let ended = loop {
        let event = next_event(&mut events).await;
        if event.kind.starts_with("build.") {
            break event;
        }
    };
    // No Docker engine here: the source is rendered and the image step skipped, saying so.
    assert_eq!(
        (ended.kind.as_str(), ended.subject.as_str(), ended.subject_id.as_str()),
        ("build.succeeded", "builds", build.as_str())
    );
    let after = ended.after.expect("the build as it ended");
    assert_eq!(
        (after["status"].as_str(), after["application_id"].as_str()),
        (Some("succeeded"), Some(application.as_str()))
    );
    drop(events);
    app.stop().await;
    remove_exchange(&exchange, &["test"]).await;
}

/// The next `entity.*` event (model events between are passed over).
async fn next_entity_event(events: &mut Subscription) -> Event {
    loop {
        let event = next_event(events).await;
        if event.kind.starts_with("entity.") {
            return event;
        }
    }
}

async fn committed_record_changes_leave_as_events_in_order(backend: Backend) {
    let (app, mut events, exchange) = with_bus(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true, "unique": true },
        { "name": "amount", "type": "decimal" }
    ]});
    assert_eq!(app.post_with_token("/api/v1/models", &access, invoice).await.0, 201);
    let (status, made) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1" })).await;
    assert_eq!(status, 201, "{made}");
    let id = made["record"]["id"].as_str().unwrap().to_string();
    // Refused: one by the database (a unique value taken, the statement undone), one
    // before it.
    assert_eq!(app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1" })).await.0, 409);
    assert_eq!(app.post_with_token("/api/v1/invoices", &access, json!({ "amount": "x" })).await.0, 400);
    let patch = Some(json!({ "amount": "12.50" }));
    let (status, patched) = app.send(reqwest::Method::PATCH, &format!("/api/v1/invoices/{id}"), &access, patch).await;
    assert_eq!(status, 200);
    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/v1/invoices/{id}"), &access, None).await;
    assert_eq!(status, 204);
    let (status, application) =
        app.post_with_token("/api/v1/applications", &access, json!({ "name": "Billing" })).await;
    assert_eq!(status, 201, "{application}");

    let mut invoices = Vec::new();
    let mut applications = Vec::new();
    while invoices.len() + applications.len() < 4 {
        let event = next_entity_event(&mut events).await;
        match event.subject.as_str() {
            "invoices" => invoices.push(event),
            "applications" => applications.push(event),
            other => panic!("an event of {other}: {event:?}"),
        }
    }
    // One owner's events leave in the order of its changes; none for the refused ones.
    let kinds: Vec<&str> = invoices.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["entity.created", "entity.updated", "entity.deleted"], "{backend:?}");
    let author = made["record"]["created_by"].as_str().unwrap().to_string();
    for event in &invoices {
        assert_eq!(event.subject_id, id);
        assert_eq!(event.actor.map(|a| a.to_string()).as_deref(), Some(author.as_str()));
        assert_eq!(event.workspace, invoices[0].workspace);
    }
    let (created, updated, deleted) = (&invoices[0], &invoices[1], &invoices[2]);
    assert_eq!((created.before.as_ref(), created.after.as_ref().map(|a| &a["number"])), (None, Some(&json!("INV-1"))));
    assert_eq!(updated.before.as_ref().map(|b| &b["amount"]), Some(&Value::Null), "{updated:?}");
    // The record as the API answered it.
    assert_eq!(updated.after.as_ref(), Some(&patched["record"]), "{updated:?}");
    assert_eq!((deleted.before.as_ref().map(|b| &b["number"]), deleted.after.as_ref()), (Some(&json!("INV-1")), None));

    let [application_event] = applications.as_slice() else { panic!("{applications:?}") };
    assert_eq!(application_event.kind, "entity.created");
    assert_eq!(application_event.subject_id, application["application"]["id"].as_str().unwrap());
    assert_eq!(application_event.after.as_ref().map(|a| &a["name"]), Some(&json!("Billing")));
    drop(events);
    app.stop().await;
    remove_exchange(&exchange, &["test"]).await;
}
