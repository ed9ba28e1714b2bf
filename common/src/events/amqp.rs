//! The RabbitMQ event bus of the mesh (lapin): events go to one durable topic exchange
//! with their kind as the routing key, persistent and confirmed by the broker before
//! [`EventBus::publish`] returns. Each consumer group has a durable queue bound to every
//! kind; a delivery not acknowledged when its consumer's connection ends (the consumer
//! crashed) is delivered again. A lost connection is made again on the next publish, and
//! a subscription's consumer reconnects by itself.

use std::time::Duration;

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use tokio::sync::{Mutex, mpsc};

use super::{Acker, Delivery, Event, EventBus, Subscription};

/// How many unacknowledged deliveries a consumer holds at once.
const PREFETCH: u16 = 64;

/// The longest pause between two attempts to reach the broker.
const MAX_PAUSE: Duration = Duration::from_secs(5);

pub struct AmqpBus {
    url: String,
    exchange: String,
    /// The publishing channel (confirms on), made again after it broke.
    publisher: Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus").field("exchange", &self.exchange).finish()
    }
}

/// A connection and a channel to `url`, the exchange declared on it.
async fn open(url: &str, exchange: &str) -> anyhow::Result<(Connection, Channel)> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
    Ok((connection, channel))
}

impl AmqpBus {
    /// Connects to `url` (checking that the broker answers) and declares `exchange`.
    pub async fn connect(url: &str, exchange: &str) -> anyhow::Result<Self> {
        let (connection, channel) =
            open(url, exchange).await.map_err(|e| anyhow::anyhow!("KILN_AMQP_URL: RabbitMQ cannot be reached: {e}"))?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(AmqpBus {
            url: url.to_string(),
            exchange: exchange.to_string(),
            publisher: Mutex::new(Some((connection, channel))),
        })
    }

    async fn publish_on(&self, channel: &Channel, events: &[Event]) -> anyhow::Result<()> {
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event)?;
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(event.id.to_string().into());
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    event.kind.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties,
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            if !confirm.await?.is_ack() {
                anyhow::bail!("RabbitMQ refused an event");
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl EventBus for AmqpBus {
    async fn publish(&self, events: &[Event]) -> anyhow::Result<()> {
        let mut publisher = self.publisher.lock().await;
        let channel = match publisher.as_ref() {
            Some((connection, channel)) if connection.status().connected() && channel.status().connected() => {
                channel.clone()
            }
            _ => {
                *publisher = None;
                let (connection, channel) = open(&self.url, &self.exchange).await?;
                channel.confirm_select(ConfirmSelectOptions::default()).await?;
                *publisher = Some((connection, channel.clone()));
                channel
            }
        };
        let published = self.publish_on(&channel, events).await;
        if published.is_err() {
            // Made again on the next publish.
            *publisher = None;
        }
        published
    }

    async fn subscribe(&self, group: &str) -> anyhow::Result<Subscription> {
        let queue = format!("{}.{group}", self.exchange);
        // The queue exists (and binds) before this returns: what is published from now on
        // is kept for the group even while its consumer reconnects.
        let (connection, channel) = open(&self.url, &self.exchange).await?;
        declare(&channel, &self.exchange, &queue).await?;
        let (sender, deliveries) = mpsc::channel(usize::from(PREFETCH));
        let (url, exchange) = (self.url.clone(), self.exchange.clone());
        tokio::spawn(async move {
            let mut first = Some((connection, channel));
            let mut pause = Duration::from_millis(100);
            loop {
                let opened = match first.take() {
                    Some(opened) => Ok(opened),
                    None => open(&url, &exchange).await,
                };
                let consumed = match opened {
                    Ok((connection, channel)) => {
                        let consumed = consume(&channel, &exchange, &queue, &sender, &mut pause).await;
                        // Unacknowledged deliveries go back to the queue with the connection.
                        let _ = connection.close(200, "done".into()).await;
                        consumed
                    }
                    Err(e) => Err(e),
                };
                match consumed {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(queue, error = %e, "lost the event bus; consuming again"),
                }
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
        });
        Ok(Subscription { deliveries })
    }
}

/// The group's durable queue, bound to every event kind.
async fn declare(channel: &Channel, exchange: &str, queue: &str) -> anyhow::Result<()> {
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.into(), durable, FieldTable::default()).await?;
    channel
        .queue_bind(queue.into(), exchange.into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
        .await?;
    Ok(())
}

/// Hands the queue's deliveries to `sender` until the subscriber leaves (`Ok`) or the
/// connection breaks (`Err`).
async fn consume(
    channel: &Channel,
    exchange: &str,
    queue: &str,
    sender: &mpsc::Sender<Delivery>,
    pause: &mut Duration,
) -> anyhow::Result<()> {
    declare(channel, exchange, queue).await?;
    channel.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let mut consumer =
        channel.basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    *pause = Duration::from_millis(100);
    loop {
        let next = tokio::select! {
            () = sender.closed() => return Ok(()),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the consumer was cancelled"),
        };
        let event = match serde_json::from_slice::<Event>(&delivery.data) {
            Ok(event) => event,
            Err(e) => {
                // Nobody can read it: acknowledged so it does not come back for ever.
                tracing::warn!(queue, error = %e, "an unreadable event was dropped");
                delivery.acker.ack(lapin::options::BasicAckOptions::default()).await?;
                continue;
            }
        };
        let delivery = Delivery { event, redelivered: delivery.redelivered, acker: Acker::Amqp(delivery.acker) };
        if sender.send(delivery).await.is_err() {
            return Ok(());
        }
    }
}
