//! The in-process event bus of all-in-one: every consumer group gets every event published
//! after it subscribed, in publish order. Nothing outlives the process; what the relay
//! handed over is gone with it (the outbox keeps what was not handed over yet).

use std::{collections::HashMap, sync::Mutex};

use tokio::sync::mpsc;

use super::{Acker, Delivery, Event, EventBus, Subscription};

/// How many events may wait for a group's consumer before publishing waits for it.
const BACKLOG: usize = 4096;

#[derive(Debug, Default)]
pub struct LocalBus {
    /// Each group's consumers take turns at its one queue.
    groups: Mutex<HashMap<String, Group>>,
}

#[derive(Debug)]
struct Group {
    sender: mpsc::Sender<Delivery>,
    /// Receivers of the group waiting for their next turn.
    shared: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Delivery>>>,
}

#[tonic::async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, events: &[Event]) -> anyhow::Result<()> {
        let senders: Vec<mpsc::Sender<Delivery>> = {
            let groups = self.groups.lock().map_err(|_| anyhow::anyhow!("the event bus's lock is poisoned"))?;
            groups.values().map(|group| group.sender.clone()).collect()
        };
        for sender in senders {
            for event in events {
                let delivery = Delivery { event: event.clone(), redelivered: false, acker: Acker::Nobody };
                // A group whose consumers are all gone takes nothing more.
                if sender.send(delivery).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&self, group: &str) -> anyhow::Result<Subscription> {
        let shared = {
            let mut groups = self.groups.lock().map_err(|_| anyhow::anyhow!("the event bus's lock is poisoned"))?;
            let entry = groups.entry(group.to_string()).or_insert_with(|| {
                let (sender, receiver) = mpsc::channel(BACKLOG);
                Group { sender, shared: std::sync::Arc::new(tokio::sync::Mutex::new(receiver)) }
            });
            entry.shared.clone()
        };
        // Each subscriber gets its own channel, fed from the group's queue one at a time.
        let (sender, deliveries) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut queue = shared.lock().await;
                    tokio::select! {
                        () = sender.closed() => return,
                        next = queue.recv() => next,
                    }
                };
                let Some(delivery) = next else { return };
                if sender.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        Ok(Subscription { deliveries })
    }
}
