//! The live side of a build: its log lines and status changes as they happen, and a
//! cancel reaching the worker that runs it. In one process ([`LocalFeed`]) a broadcast
//! channel per build; in the mesh ([`RedisFeed`]) a Redis pub/sub channel per build, so
//! a watcher connected to one worker follows a build another runs, with no shared disk.
//!
//! The feed is only the tail: the log is stored first (`build_logs`), then announced, so a
//! watcher that subscribes, then reads what is stored, misses nothing; one that falls
//! behind is told ([`FeedItem::Missed`]) and reads the store again.

use std::{collections::HashMap, pin::Pin, sync::Arc};

use anyhow::Context;
use futures::{Stream, StreamExt};
use kiln_proto::v1::BuildEvent;
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use uuid::Uuid;

/// What is announced about one build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// A log line or a status change, as watchers receive it.
    Event(Box<BuildEvent>),
    /// A user cancelled the build: its run stops.
    Cancel,
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    Notice(Notice),
    /// Notices were dropped (the subscriber fell behind): read the store again.
    Missed,
}

pub type FeedStream = Pin<Box<dyn Stream<Item = FeedItem> + Send>>;

#[tonic::async_trait]
pub trait BuildFeed: Send + Sync + 'static {
    /// Announces `notice` to the build's subscribers; best effort (the store has it).
    async fn publish(&self, build: Uuid, notice: &Notice);
    async fn subscribe(&self, build: Uuid) -> anyhow::Result<FeedStream>;
}

/// Notices a subscriber may fall behind by before it is told it missed some.
const BACKLOG: usize = 1024;

/// The feed of one process.
#[derive(Debug, Clone, Default)]
pub struct LocalFeed {
    channels: Arc<std::sync::Mutex<HashMap<Uuid, broadcast::Sender<Notice>>>>,
}

#[tonic::async_trait]
impl BuildFeed for LocalFeed {
    async fn publish(&self, build: Uuid, notice: &Notice) {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = channels.get(&build) {
            if sender.receiver_count() == 0 {
                channels.remove(&build);
            } else {
                let _ = sender.send(notice.clone());
            }
        }
    }

    async fn subscribe(&self, build: Uuid) -> anyhow::Result<FeedStream> {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Channels nobody listens to any more go as new ones come.
        channels.retain(|_, sender| sender.receiver_count() > 0);
        let receiver = channels.entry(build).or_insert_with(|| broadcast::channel(BACKLOG).0).subscribe();
        Ok(Box::pin(BroadcastStream::new(receiver).map(|item| match item {
            Ok(notice) => FeedItem::Notice(notice),
            Err(BroadcastStreamRecvError::Lagged(_)) => FeedItem::Missed,
        })))
    }
}

/// The feed of the mesh, on Redis pub/sub: channel `<namespace>:build:<id>`.
#[derive(Clone)]
pub struct RedisFeed {
    client: redis::Client,
    publisher: ConnectionManager,
    namespace: String,
}

impl std::fmt::Debug for RedisFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFeed").field("namespace", &self.namespace).finish()
    }
}

impl RedisFeed {
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("KILN_REDIS_URL is not a valid Redis URL")?;
        let publisher = ConnectionManager::new(client.clone()).await.context("connecting to Redis")?;
        Ok(RedisFeed { client, publisher, namespace: namespace.to_string() })
    }

    fn channel(&self, build: Uuid) -> String {
        format!("{}:build:{build}", self.namespace)
    }
}

#[tonic::async_trait]
impl BuildFeed for RedisFeed {
    async fn publish(&self, build: Uuid, notice: &Notice) {
        let Ok(payload) = serde_json::to_string(notice) else { return };
        let mut publisher = self.publisher.clone();
        if let Err(error) = publisher.publish::<_, _, ()>(self.channel(build), payload).await {
            tracing::warn!(%build, %error, "could not announce a build notice; watchers read it from the store");
        }
    }

    async fn subscribe(&self, build: Uuid) -> anyhow::Result<FeedStream> {
        let mut pubsub = self.client.get_async_pubsub().await.context("subscribing to a build's feed")?;
        pubsub.subscribe(self.channel(build)).await.context("subscribing to a build's feed")?;
        Ok(Box::pin(pubsub.into_on_message().map(|message| {
            match message.get_payload::<String>().ok().and_then(|text| serde_json::from_str(&text).ok()) {
                Some(notice) => FeedItem::Notice(notice),
                None => FeedItem::Missed,
            }
        })))
    }
}
