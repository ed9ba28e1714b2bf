//! Domain events: what changed in a workspace (a record, a model, a build) as one
//! [`Event`], carried by one [`EventBus`] with two backends: RabbitMQ ([`amqp`], the
//! mesh: a topic exchange, publisher confirms, a durable queue per consumer group, and
//! redelivery of what a consumer took but never acknowledged) and in-process ([`local`],
//! all-in-one). Changes do not publish themselves: their owner appends the events to its
//! outbox ([`outbox`]) once the change committed, and the outbox's relay publishes them
//! in order, waiting out a bus that is down. So an event leaves only for a committed
//! change, and a bus restart loses none.

pub mod amqp;
pub mod local;
pub mod outbox;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

/// One thing that happened to one subject of a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique: a consumer that sees an event twice (at-least-once) can tell.
    pub id: Uuid,
    pub workspace: Uuid,
    /// What happened: `entity.created`, `entity.updated`, `entity.deleted`,
    /// `model.created`, `model.changed`, `model.deleted`, `build.succeeded`, … The topic
    /// exchange routes on it, so a consumer can bind `entity.*`.
    pub kind: String,
    /// What it happened to: a model's plural for `entity.*`, `models`, `builds`.
    pub subject: String,
    pub subject_id: String,
    /// Who made the change; none for the platform's own work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Uuid>,
    pub at: DateTime<Utc>,
    /// The subject before the change (updates and deletes), as the API shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The subject after the change (creates and updates), as the API shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The trace of the change (W3C `traceparent`): its consumers' work joins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Event {
    pub fn new(workspace: Uuid, kind: &str, subject: &str, subject_id: &str, actor: Option<Uuid>) -> Self {
        Event {
            id: Uuid::now_v7(),
            workspace,
            kind: kind.into(),
            subject: subject.into(),
            subject_id: subject_id.into(),
            actor,
            at: Utc::now(),
            before: None,
            after: None,
            traceparent: crate::telemetry::traceparent(),
        }
    }

    pub fn with_before(mut self, before: Option<Value>) -> Self {
        self.before = before;
        self
    }

    pub fn with_after(mut self, after: Option<Value>) -> Self {
        self.after = after;
        self
    }

    /// The event as workspaces see it (workflow inputs, webhook payloads): without the
    /// platform's trace context.
    pub fn to_public_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(fields) = value.as_object_mut() {
            fields.remove("traceparent");
        }
        value
    }
}

/// Carries events from the relays of every owner to every consumer group.
#[tonic::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Hands `events` to the bus in order; `Ok` once the bus has them all (for RabbitMQ:
    /// confirmed, persisted to its durable queues).
    async fn publish(&self, events: &[Event]) -> anyhow::Result<()>;

    /// The events of the consumer group `group` from now on (for RabbitMQ: also those
    /// published while the group's consumers were away, and those a consumer took but
    /// never acknowledged). Each is delivered to one consumer of the group, at least once.
    async fn subscribe(&self, group: &str) -> anyhow::Result<Subscription>;
}

pub type SharedBus = Arc<dyn EventBus>;

/// One event as a consumer receives it; [`Delivery::ack`] once it is handled, or it comes
/// again (RabbitMQ, after the consumer's connection ends).
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    /// Delivered before to a consumer that did not acknowledge it.
    pub redelivered: bool,
    acker: Acker,
}

#[derive(Debug)]
enum Acker {
    /// In-process: nothing to acknowledge.
    Nobody,
    Amqp(lapin::Acker),
}

impl Delivery {
    /// The span of handling this delivery in consumer group `group`, in the trace of the
    /// change that caused it (OpenTelemetry's messaging conventions); records how long
    /// after the change the group got it (`kiln_event_lag_seconds`).
    pub fn begin(&self, group: &str) -> tracing::Span {
        let lag = (Utc::now() - self.event.at).to_std().unwrap_or_default();
        metrics::histogram!("kiln_event_lag_seconds", "group" => group.to_string()).record(lag.as_secs_f64());
        let span = tracing::info_span!(
            "event",
            otel.name = format!("process {}", self.event.kind),
            otel.kind = "consumer",
            messaging.operation.type = "process",
            messaging.destination.name = self.event.kind.as_str(),
            messaging.consumer.group.name = group,
            messaging.message.id = %self.event.id,
        );
        crate::telemetry::follow(&span, self.event.traceparent.as_deref());
        span
    }

    pub async fn ack(self) -> anyhow::Result<()> {
        match self.acker {
            Acker::Nobody => Ok(()),
            Acker::Amqp(acker) => {
                acker.ack(lapin::options::BasicAckOptions::default()).await?;
                Ok(())
            }
        }
    }
}

/// A consumer group's deliveries, in the order the bus gives them.
#[derive(Debug)]
pub struct Subscription {
    deliveries: mpsc::Receiver<Delivery>,
}

impl Subscription {
    /// The next delivery; `None` once the bus is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }
}

/// The bus `config` names: RabbitMQ at `KILN_AMQP_URL` through `KILN_AMQP_EXCHANGE`, or
/// the in-process one without a URL.
pub async fn bus(config: &crate::Config) -> anyhow::Result<SharedBus> {
    Ok(match &config.amqp_url {
        Some(url) => Arc::new(amqp::AmqpBus::connect(url, &config.amqp_exchange).await?),
        None => Arc::new(local::LocalBus::default()),
    })
}
