//! Job queues: jobs handed to workers at least once, behind one trait ([`JobQueue`]) with
//! two backends: Redis for the mesh ([`RedisQueue`], several processes share it) and a
//! table in the platform database for a single process ([`TableQueue`], jobs survive a
//! restart). The same guarantees from both:
//! - a job is held by one worker at a time; one held past the visibility timeout (its
//!   worker died or hung) is taken again, as another attempt; a worker on a long job
//!   keeps it by renewing the timeout ([`JobQueue::keep`]);
//! - a failed job is taken again after an exponential backoff, until `max_attempts`,
//!   then it lands in the dead letters with the reason;
//! - a job is taken at least once, so work must be idempotent on the job's own key (a
//!   build on its id).

mod redis;
mod table;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::redis::RedisQueue;
pub use table::{MIGRATIONS, TableQueue};

/// How a queue hands out and retries jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a taken job is the worker's before another may take it.
    pub visibility: Duration,
    /// Takes a job gets, at most, before it is dead-lettered.
    pub max_attempts: u32,
    /// The wait before the first retry; each retry after waits twice as long.
    pub first_backoff: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings { visibility: Duration::from_secs(60), max_attempts: 5, first_backoff: Duration::from_secs(2) }
    }
}

impl QueueSettings {
    /// The wait before taking a job again after its `attempt`-th take failed.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.first_backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16))
    }
}

/// A job as a worker holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The queue's handle of the job: the same across its attempts.
    pub id: String,
    pub payload: serde_json::Value,
    /// Which take of the job this is, from 1.
    pub attempt: u32,
    /// The worker holding it.
    pub worker: String,
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// It will be taken again after this wait.
    Retrying(Duration),
    /// It has had its attempts: it is in the dead letters.
    Dead,
    /// Another worker took it since (this one outlived its visibility timeout): it is that
    /// worker's to settle, and nothing changed.
    NoLongerHeld,
}

impl Failed {
    /// What a failure came to: whether the queue still had the job as this worker's
    /// (`settled`), and if so whether it gave up or retries after `wait`.
    fn settled(settled: bool, give_up: bool, wait: Duration) -> Self {
        match (settled, give_up) {
            (false, _) => Failed::NoLongerHeld,
            (true, true) => Failed::Dead,
            (true, false) => Failed::Retrying(wait),
        }
    }
}

/// A job given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub payload: serde_json::Value,
    pub attempts: u32,
    pub reason: String,
}

/// How many jobs are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Waiting to be taken now.
    pub waiting: u64,
    /// Held by a worker.
    pub in_flight: u64,
    /// Failed, waiting out their backoff.
    pub retrying: u64,
    pub dead: u64,
}

/// A job queue (see the module's guarantees).
#[tonic::async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a job; returns its id.
    async fn enqueue(&self, payload: &serde_json::Value) -> anyhow::Result<String>;
    /// The next job for `worker`, if one is waiting (or held past its visibility timeout).
    async fn take(&self, worker: &str) -> anyhow::Result<Option<Job>>;
    /// The worker still works on the job: its visibility timeout starts again. False
    /// when the worker no longer holds it (another took it since).
    async fn keep(&self, job: &Job) -> anyhow::Result<bool>;
    /// The job is done: it leaves the queue.
    async fn complete(&self, job: &Job) -> anyhow::Result<()>;
    /// The job failed for `reason`: retried after a backoff, or dead-lettered.
    async fn fail(&self, job: &Job, reason: &str) -> anyhow::Result<Failed>;
    async fn stats(&self) -> anyhow::Result<QueueStats>;
    /// The newest dead letters first, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> anyhow::Result<Vec<DeadLetter>>;
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
