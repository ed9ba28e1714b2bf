//! Webhook subscriptions, end to end: the events a subscription names reach its URL
//! signed (checked here as a receiver checks), others do not; a receiver that keeps
//! failing is retried with every attempt recorded, then the subscription is disabled
//! with a notice; enabled again, a delivery is sent anew on demand.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    harness::{Backend, TestApp, assert_error, spawn_app_with},
    workflows::{Receiver, signed_by, with_invoices},
};

crate::on_every_backend!(
    a_subscription_receives_signed_deliveries_of_the_events_it_names,
    a_failing_receiver_is_retried_then_disabled_with_a_notice_and_redelivery_sends_again,
);

/// Polls `path` until `done` holds for its answer, within a deadline.
async fn until(app: &TestApp, access: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app.get_with_token(path, access).await;
        assert_eq!(status, 200, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path} within 20 s: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_subscription_receives_signed_deliveries_of_the_events_it_names(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.webhook_allow_private = true).await;
    let receiver = Receiver::start().await;
    let access = with_invoices(&app).await;

    let refused = json!({ "url": "ftp://example.com", "events": [] });
    let (status, body) = app.post_with_token("/api/v1/webhooks", &access, refused).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    let fields: Vec<&str> = error["details"].as_array().unwrap().iter().filter_map(|d| d["field"].as_str()).collect();
    assert_eq!(fields, ["url", "events"], "{body}");

    let subscription = json!({ "url": receiver.url("/hooks"), "events": ["entity.created"], "description": "finance" });
    let (status, made) = app.post_with_token("/api/v1/webhooks", &access, subscription).await;
    assert_eq!(status, 201, "{made}");
    let webhook = made["webhook"]["id"].as_str().unwrap().to_string();
    let secret = made["webhook"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "a secret is made: {made}");

    let (status, invoice) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1" })).await;
    assert_eq!(status, 201, "{invoice}");
    let id = invoice["record"]["id"].as_str().unwrap();
    // An update is not an event the subscription names.
    let patch = Some(json!({ "note": "changed" }));
    assert_eq!(app.send(reqwest::Method::PATCH, &format!("/api/v1/invoices/{id}"), &access, patch).await.0, 200);
    let (status, _) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-2" })).await;
    assert_eq!(status, 201);

    let delivered = receiver.until("/hooks", 2).await;
    let bodies: Vec<Value> = delivered.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let mut numbers: Vec<&str> = bodies.iter().map(|b| b["data"]["after"]["number"].as_str().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, ["INV-1", "INV-2"], "{backend:?}: {bodies:?}");
    assert!(bodies.iter().all(|b| b["type"] == "entity.created" && b["data"]["subject"] == "invoices"));
    for (received, body) in delivered.iter().zip(&bodies) {
        assert!(signed_by(&secret, received), "{backend:?}: the signature verifies");
        assert_eq!(received.headers["webhook-id"].to_str().unwrap(), body["data"]["id"], "the event's id");
    }

    let deliveries = until(&app, &access, &format!("/api/v1/webhooks/{webhook}/deliveries"), |body| {
        body["deliveries"].as_array().is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["status"] == "succeeded"))
    })
    .await;
    for delivery in deliveries["deliveries"].as_array().unwrap() {
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!((attempts.len(), attempts[0]["status_code"].as_i64()), (1, Some(200)), "{delivery}");
        assert_eq!(delivery["event_kind"], "entity.created");
    }
    app.stop().await;
    assert_eq!(receiver.on("/hooks").len(), 2, "nothing more was sent");
}

async fn a_failing_receiver_is_retried_then_disabled_with_a_notice_and_redelivery_sends_again(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        config.webhook_allow_private = true;
        config.webhook_retry_base = Duration::from_millis(20);
        config.webhook_retry_window = Duration::from_millis(500);
    })
    .await;
    let receiver = Receiver::start().await;
    let access = with_invoices(&app).await;
    let subscription = json!({ "url": receiver.url("/fail"), "events": ["entity.*"] });
    let (status, made) = app.post_with_token("/api/v1/webhooks", &access, subscription).await;
    assert_eq!(status, 201, "{made}");
    let webhook = made["webhook"]["id"].as_str().unwrap().to_string();
    let (status, _) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1" })).await;
    assert_eq!(status, 201);

    let disabled =
        until(&app, &access, &format!("/api/v1/webhooks/{webhook}"), |body| body["webhook"]["enabled"] == false).await;
    let reason = disabled["webhook"]["disabled_reason"].as_str().unwrap();
    assert!(reason.starts_with("every delivery failed for 500ms") && reason.contains("answered 500"), "{disabled}");
    let deliveries = until(&app, &access, &format!("/api/v1/webhooks/{webhook}/deliveries"), |body| {
        body["deliveries"][0]["status"] == "failed"
    })
    .await;
    let delivery = &deliveries["deliveries"][0];
    let attempts = delivery["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 3, "{backend:?}: tried again before giving up: {delivery}");
    assert!(
        attempts
            .iter()
            .all(|a| a["status_code"] == 500 && a["error"].as_str().unwrap().contains("the receiver is down"))
    );
    assert_eq!(receiver.on("/fail").len(), attempts.len(), "every attempt is recorded");
    let ids: Vec<_> = receiver.on("/fail").iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "a retry carries the same webhook-id");

    // The notice: the audit log says so.
    let (status, audit) = app.get_with_token("/api/v1/auth/audit", &access).await;
    assert_eq!(status, 200, "{audit}");
    let noticed = audit["events"].as_array().unwrap().iter().any(|e| e["action"] == "webhook.disabled");
    assert!(noticed, "{audit}");

    // Pointed somewhere that answers and enabled again, the delivery is sent on demand.
    let repaired = json!({ "url": receiver.url("/ok"), "events": ["entity.*"], "enabled": true });
    let (status, body) =
        app.send(reqwest::Method::PUT, &format!("/api/v1/webhooks/{webhook}"), &access, Some(repaired)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["webhook"]["enabled"].as_bool(), body["webhook"]["disabled_reason"].as_str()),
        (Some(true), Some(""))
    );
    let delivery_id = delivery["id"].as_str().unwrap();
    let (status, body) =
        app.post_with_token(&format!("/api/v1/webhook-deliveries/{delivery_id}/redeliver"), &access, json!({})).await;
    assert_eq!(status, 202, "{body}");
    let sent = receiver.until("/ok", 1).await;
    assert_eq!(sent[0].headers["webhook-id"], ids[0]);
    until(&app, &access, &format!("/api/v1/webhooks/{webhook}/deliveries"), |body| {
        body["deliveries"][0]["status"] == "succeeded"
    })
    .await;
    let (status, body) = app
        .post_with_token(&format!("/api/v1/webhook-deliveries/{}/redeliver", uuid::Uuid::now_v7()), &access, json!({}))
        .await;
    assert_error(status, &body, 404, "not_found");
    app.stop().await;
}
