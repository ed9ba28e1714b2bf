//! Webhook subscriptions: a workspace's events POSTed to URLs it chose, signed the
//! Standard Webhooks way (`workflows::outgoing::signature_headers`, the `webhook-id`
//! being the event's id, the same on every attempt), through the same guarded client as
//! workflows' requests.
//!
//! Each event of the bus that a subscription names becomes one delivery row
//! ([`Webhooks::fan_out`], the consumer group `webhooks`; once per event and
//! subscription however often the bus delivers it). The dispatcher
//! ([`keep_delivering`]) takes deliveries whose next attempt is due, claiming each by its
//! due time so of several processes one sends it, and records every attempt. A failed
//! attempt is tried again after a wait that grows fourfold from `KILN_WEBHOOK_RETRY_BASE`
//! (at most 6 h) until `KILN_WEBHOOK_RETRY_WINDOW` (a day) has passed since the event;
//! then the delivery has failed. A subscription none of whose deliveries succeeded while
//! one was tried for the whole window is disabled, with the reason on it, an audit entry and
//! a `webhook.disabled` event. [`api`] is WebhookService.

pub mod api;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use kiln_common::{
    Db,
    db::{Id, RowExt, is_unique_violation},
    events::{Event, SharedBus, outbox::Outbox},
    with_db, with_db_read,
};
use serde_json::{Value, json};
use sqlx::types::Json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::workflows::{outgoing, spec};

/// The bus's consumer group of webhook deliveries.
pub const EVENT_GROUP: &str = "webhooks";

/// The longest wait between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(6 * 3600);
/// How long a process holds a delivery it is sending before another may take it.
const CLAIM: Duration = Duration::from_secs(60);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the dispatcher looks for due deliveries when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// Deliveries one pass of the dispatcher takes.
const BATCH: i64 = 20;

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// The wait after the first failed attempt; each next one is four times longer.
    pub base: Duration,
    /// How long after its event a delivery is still tried.
    pub window: Duration,
}

#[derive(Clone)]
pub struct Webhooks {
    db: Db,
    outgoing: outgoing::Outgoing,
    outbox: Outbox,
    retries: Retries,
    /// Wakes the dispatcher when a delivery is due at once.
    wake: Arc<Notify>,
}

/// A due delivery with what sending it needs.
struct Due {
    id: Uuid,
    workspace: Uuid,
    webhook: Uuid,
    event_id: Uuid,
    payload: Value,
    attempts: Vec<Value>,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    url: String,
    secret: String,
}

/// The wait after the `n`th failed attempt (n ≥ 1).
fn wait_after(retries: Retries, n: usize) -> Duration {
    let factor = 4u32.saturating_pow(u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX).min(15));
    retries.base.saturating_mul(factor).min(MAX_WAIT)
}

fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Webhooks {
    pub fn new(db: Db, outgoing: outgoing::Outgoing, outbox: Outbox, retries: Retries) -> Self {
        Webhooks { db, outgoing, outbox, retries, wake: Arc::new(Notify::new()) }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Records a delivery of `event` for every enabled subscription of its workspace that
    /// names its kind; how many were recorded now (not before).
    pub async fn fan_out(&self, event: &Event) -> anyhow::Result<usize> {
        let subscriptions: Vec<(Uuid, Value)> = with_db_read!(&self.db, pool => {
            let rows = sqlx::query("SELECT id, events FROM webhooks WHERE workspace_id = $1 AND enabled ORDER BY id")
                .bind(Id(event.workspace)).fetch_all(pool).await?;
            rows.iter().map(|row| Ok((row.id("id")?, row.json("events")?))).collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .context("reading webhook subscriptions")?;
        let payload = json!({ "type": event.kind, "timestamp": event.at, "data": event.to_public_json() });
        let now = kiln_common::db::now();
        let mut recorded = 0;
        for (webhook, events) in subscriptions {
            let patterns: Vec<String> = serde_json::from_value(events).unwrap_or_default();
            if !spec::matches_any(&patterns, &event.kind) {
                continue;
            }
            let inserted = with_db!(&self.db, pool => {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, workspace_id, webhook_id, event_id, event_kind, payload, status, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)",
                )
                .bind(Id::new()).bind(Id(event.workspace)).bind(Id(webhook)).bind(Id(event.id)).bind(&event.kind)
                .bind(Json(&payload)).bind(now)
                .execute(pool).await.map(|_| ())
            });
            match inserted {
                Ok(()) => recorded += 1,
                // Recorded for an earlier delivery of the event.
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(anyhow::Error::from(e).context("recording a webhook delivery")),
            }
        }
        if recorded > 0 {
            self.wake.notify_one();
        }
        Ok(recorded)
    }

    /// Sends every delivery due by now (up to a batch), each once across processes; how
    /// many were sent.
    pub async fn dispatch_due(&self) -> anyhow::Result<usize> {
        let now = kiln_common::db::now();
        let due: Vec<Due> = with_db_read!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT d.id, d.workspace_id, d.webhook_id, d.event_id, d.payload, d.attempts, d.next_attempt_at, d.created_at, w.url, w.secret \
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled \
                 ORDER BY d.next_attempt_at LIMIT $2",
            )
            .bind(now).bind(BATCH).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(Due {
                        id: row.id("id")?,
                        workspace: row.id("workspace_id")?,
                        webhook: row.id("webhook_id")?,
                        event_id: row.id("event_id")?,
                        payload: row.json("payload")?,
                        attempts: row.json("attempts")?.as_array().cloned().unwrap_or_default(),
                        next_attempt_at: row.time("next_attempt_at")?,
                        created_at: row.time("created_at")?,
                        url: row.text("url")?,
                        secret: row.text("secret")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .context("reading due webhook deliveries")?;
        let mut claimed = Vec::new();
        for delivery in due {
            if self.claim(&delivery, now).await? {
                claimed.push(delivery);
            }
        }
        let sent = claimed.len();
        futures::future::join_all(claimed.into_iter().map(|delivery| self.attempt(delivery))).await;
        Ok(sent)
    }

    /// Takes `delivery` for this process: moves its due time on, if no one moved it first.
    async fn claim(&self, delivery: &Due, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let held = with_db!(&self.db, pool => {
            sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = $3 WHERE id = $1 AND next_attempt_at = $2 AND status = 'pending'")
                .bind(Id(delivery.id)).bind(delivery.next_attempt_at).bind(after(now, CLAIM))
                .execute(pool).await.map(|done| done.rows_affected() == 1)
        })?;
        Ok(held)
    }

    /// One attempt of a claimed delivery, and what follows from it.
    async fn attempt(&self, mut delivery: Due) {
        let began = std::time::Instant::now();
        let at = kiln_common::db::now();
        let body = serde_json::to_vec(&delivery.payload).unwrap_or_default();
        let outcome = match self.outgoing.request(reqwest::Method::POST, &delivery.url) {
            Err(why) => Err((0, why)),
            Ok(request) => {
                let mut request = request.timeout(ATTEMPT_TIMEOUT).header("content-type", "application/json");
                let id = delivery.event_id.to_string();
                for (name, value) in outgoing::signature_headers(&delivery.secret, &id, at.timestamp(), &body) {
                    request = request.header(name, value);
                }
                match request.body(body).send().await {
                    Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
                    Ok(response) => {
                        let code = response.status().as_u16();
                        let answer = outgoing::response_body(response).await;
                        let shown: String = match answer {
                            Value::String(text) => text,
                            other => other.to_string(),
                        }
                        .chars()
                        .take(200)
                        .collect();
                        Err((code, format!("answered {code}: {shown}")))
                    }
                    Err(e) => Err((0, crate::workflows::error_chain(&e))),
                }
            }
        };
        let duration_ms = i64::try_from(began.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (code, error) = match &outcome {
            Ok(code) => (*code, None),
            Err((code, why)) => (*code, Some(why.clone())),
        };
        delivery.attempts.push(json!({ "at": at, "status_code": code, "error": error, "duration_ms": duration_ms }));
        let status = if outcome.is_ok() { "succeeded" } else { "failed" };
        metrics::counter!("kiln_webhook_attempts_total", "status" => status).increment(1);
        if let Err(e) = self.settle(&delivery, outcome.is_ok(), at).await {
            tracing::warn!(delivery = %delivery.id, error = %format!("{e:#}"), "could not record a webhook attempt");
        }
    }

    /// Records an attempt's end: the delivery succeeded, waits for its next attempt, or
    /// has failed for good, and then its subscription may be disabled.
    async fn settle(&self, delivery: &Due, succeeded: bool, at: DateTime<Utc>) -> anyhow::Result<()> {
        let window_end = after(delivery.created_at, self.retries.window);
        let (status, next) = if succeeded {
            ("succeeded", None)
        } else if at >= window_end {
            ("failed", None)
        } else {
            // The last try lands at the window's end, not after it.
            let next = after(at, wait_after(self.retries, delivery.attempts.len())).min(window_end);
            // A retry due before the dispatcher's next look wakes it.
            if let Ok(wait) = (next - at).to_std()
                && wait < POLL
            {
                let wake = self.wake.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    wake.notify_one();
                });
            }
            ("pending", Some(next))
        };
        with_db!(&self.db, pool => {
            sqlx::query("UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4 WHERE id = $1")
                .bind(Id(delivery.id)).bind(status).bind(Json(&delivery.attempts)).bind(next)
                .execute(pool).await.map(|_| ())
        })?;
        if status != "pending" {
            metrics::counter!("kiln_webhook_deliveries_total", "status" => status).increment(1);
        }
        if succeeded {
            with_db!(&self.db, pool => {
                sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(Id(delivery.webhook)).execute(pool).await.map(|_| ())
            })?;
            return Ok(());
        }
        let failing_since: Option<DateTime<Utc>> = with_db!(&self.db, pool => {
            match sqlx::query("UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 RETURNING failing_since")
                .bind(Id(delivery.webhook)).bind(at).fetch_optional(pool).await
            {
                Ok(Some(row)) => row.opt_time("failing_since"),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        // Given up, with nothing delivered since its first attempt: the subscription has
        // failed for the whole window.
        let first_attempt =
            delivery.attempts.first().and_then(|a| serde_json::from_value::<DateTime<Utc>>(a["at"].clone()).ok());
        let failing_throughout = matches!((failing_since, first_attempt), (Some(since), Some(first)) if since <= first);
        if status == "failed" && failing_throughout {
            self.disable(delivery, at).await?;
        }
        Ok(())
    }

    /// Disables a subscription whose deliveries kept failing, saying so.
    async fn disable(&self, delivery: &Due, at: DateTime<Utc>) -> anyhow::Result<()> {
        let window = humantime(self.retries.window);
        let reason = format!("every delivery failed for {window}; the last: {}", last_error(&delivery.attempts));
        let disabled = with_db!(&self.db, pool => {
            sqlx::query("UPDATE webhooks SET enabled = FALSE, disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled")
                .bind(Id(delivery.webhook)).bind(&reason).bind(at)
                .execute(pool).await.map(|done| done.rows_affected() == 1)
        })?;
        if !disabled {
            return Ok(());
        }
        tracing::warn!(webhook = %delivery.webhook, workspace = %delivery.workspace, %reason, "a webhook subscription was disabled");
        metrics::counter!("kiln_webhooks_disabled_total").increment(1);
        crate::auth::store::audit(
            &self.db,
            crate::auth::store::AuditEvent {
                action: "webhook.disabled",
                outcome: "disabled",
                user_id: None,
                workspace_id: Some(delivery.workspace),
                detail: json!({ "webhook": delivery.webhook.to_string(), "url": delivery.url, "reason": reason }),
            },
        )
        .await;
        let event = Event::new(delivery.workspace, "webhook.disabled", "webhooks", &delivery.webhook.to_string(), None)
            .with_after(Some(json!({ "id": delivery.webhook.to_string(), "url": delivery.url, "enabled": false, "disabled_reason": reason })));
        self.outbox.keep(&[event], None).await;
        Ok(())
    }

    /// Makes delivery `id` of `workspace` due now, whatever became of it; false when
    /// there is no such delivery.
    pub async fn redeliver(&self, workspace: Uuid, id: Uuid) -> anyhow::Result<bool> {
        let now = kiln_common::db::now();
        let found = with_db!(&self.db, pool => {
            sqlx::query("UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3 WHERE id = $1 AND workspace_id = $2")
                .bind(Id(id)).bind(Id(workspace)).bind(now)
                .execute(pool).await.map(|done| done.rows_affected() == 1)
        })?;
        if found {
            self.wake.notify_one();
        }
        Ok(found)
    }
}

fn last_error(attempts: &[Value]) -> String {
    attempts.last().and_then(|a| a["error"].as_str()).unwrap_or("no answer").to_string()
}

/// A duration as people say it: 1d, 6h, 300ms.
fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// Records the deliveries of each event of the bus, until `stop`.
pub async fn follow_events(webhooks: Webhooks, bus: SharedBus, stop: CancellationToken) {
    let engine = webhooks.clone();
    crate::workflows::triggers::consume(bus, EVENT_GROUP, stop, move |event| {
        let engine = engine.clone();
        async move { engine.fan_out(&event).await.map(|_| ()) }
    })
    .await
}

/// Sends due deliveries every [`POLL`], or at once when one becomes due, until `stop`.
pub async fn keep_delivering(webhooks: Webhooks, stop: CancellationToken) {
    loop {
        match webhooks.dispatch_due().await {
            // A full batch: more may be due.
            Ok(sent) if sent as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not send webhook deliveries this time"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = webhooks.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_fourfold_up_to_six_hours() {
        let retries = Retries { base: Duration::from_secs(5), window: Duration::from_secs(86_400) };
        let waits: Vec<u64> = (1..=9).map(|n| wait_after(retries, n).as_secs()).collect();
        assert_eq!(waits, [5, 20, 80, 320, 1280, 5120, 20480, 21600, 21600]);
        assert_eq!(wait_after(retries, 1000), MAX_WAIT);
        assert_eq!(humantime(Duration::from_secs(86_400)), "1d");
        assert_eq!(humantime(Duration::from_millis(300)), "300ms");
    }
}
