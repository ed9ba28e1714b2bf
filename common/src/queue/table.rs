//! [`TableQueue`]: the job queue in the platform database's `queue_jobs` table, for a
//! single Kiln process (all-in-one): jobs survive a restart. Taking a job is one
//! `UPDATE … RETURNING` of the oldest ready row (on PostgreSQL with `SKIP LOCKED`, so
//! workers never wait on each other; SQLite's single writer serialises them), so two
//! workers never hold one job.

use anyhow::Context;
use serde_json::Value;
use sqlx::types::Json;

use super::{DeadLetter, Failed, Job, JobQueue, QueueSettings, QueueStats, millis, now_ms};
use crate::{
    Db,
    db::{Id, RowExt},
    with_db, with_db_read,
};

/// The `queue_jobs` table, applied by the process that runs the queue.
pub static MIGRATIONS: crate::db::Migrations = crate::migrations!("queue": 1 "0001_queue");

#[derive(Debug, Clone)]
pub struct TableQueue {
    db: Db,
    queue: String,
    settings: QueueSettings,
}

impl TableQueue {
    /// The queue `queue` in `db`, whose [`MIGRATIONS`] must have been applied.
    pub fn new(db: Db, queue: &str, settings: QueueSettings) -> Self {
        TableQueue { db, queue: queue.to_string(), settings }
    }

    fn job_id(job: &Job) -> anyhow::Result<Id> {
        Ok(Id(uuid::Uuid::parse_str(&job.id).context("not a job of this queue")?))
    }
}

#[tonic::async_trait]
impl JobQueue for TableQueue {
    async fn enqueue(&self, payload: &Value) -> anyhow::Result<String> {
        let id = Id::new();
        let now = now_ms();
        with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO queue_jobs (id, queue, payload, state, available_at, created_at) \
                 VALUES ($1, $2, $3, 'ready', $4, $4)",
            )
            .bind(id).bind(&self.queue).bind(Json(payload)).bind(now)
            .execute(pool).await?;
        });
        Ok(id.0.to_string())
    }

    async fn take(&self, worker: &str) -> anyhow::Result<Option<Job>> {
        let now = now_ms();
        let max = i64::from(self.settings.max_attempts);
        // A job whose every take outlived its holder is given up on, not taken again.
        with_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE queue_jobs SET state = 'dead', held_by = NULL, available_at = $2, \
                 last_error = 'its worker held it past the visibility timeout on every attempt' \
                 WHERE queue = $1 AND state = 'held' AND held_until < $2 AND attempt >= $3",
            )
            .bind(&self.queue).bind(now).bind(max)
            .execute(pool).await?;
        });
        let skip_locked = match self.db {
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Db::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE queue_jobs SET state = 'held', held_by = $1, held_until = $2, attempt = attempt + 1 \
             WHERE id = (SELECT id FROM queue_jobs WHERE queue = $3 \
               AND ((state = 'ready' AND available_at <= $4) OR (state = 'held' AND held_until < $4)) \
               ORDER BY available_at, id LIMIT 1{skip_locked}) \
             RETURNING id, payload, attempt"
        );
        let held_until = now.saturating_add(millis(self.settings.visibility));
        let taken = with_db!(&self.db, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(worker).bind(held_until).bind(&self.queue).bind(now)
                .fetch_optional(pool).await?
            {
                Some(row) => Some((row.id("id")?, row.json("payload")?, row.int("attempt")?)),
                None => None,
            }
        });
        Ok(taken.map(|(id, payload, attempt)| Job {
            id: id.to_string(),
            payload,
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            worker: worker.to_string(),
        }))
    }

    async fn complete(&self, job: &Job) -> anyhow::Result<()> {
        let id = Self::job_id(job)?;
        with_db!(&self.db, pool => {
            sqlx::query("DELETE FROM queue_jobs WHERE id = $1").bind(id).execute(pool).await?;
        });
        Ok(())
    }

    async fn keep(&self, job: &Job) -> anyhow::Result<bool> {
        let id = Self::job_id(job)?;
        let held_until = now_ms().saturating_add(millis(self.settings.visibility));
        let kept = with_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE queue_jobs SET held_until = $1 WHERE id = $2 AND state = 'held' AND held_by = $3 AND attempt = $4",
            )
            .bind(held_until).bind(id).bind(&job.worker).bind(i64::from(job.attempt))
            .execute(pool).await?.rows_affected()
        });
        Ok(kept > 0)
    }

    async fn fail(&self, job: &Job, reason: &str) -> anyhow::Result<Failed> {
        let id = Self::job_id(job)?;
        let give_up = job.attempt >= self.settings.max_attempts;
        let wait = self.settings.backoff(job.attempt);
        let (state, available_at) =
            if give_up { ("dead", now_ms()) } else { ("ready", now_ms().saturating_add(millis(wait))) };
        // Only while this worker still holds it: a job another worker has taken since
        // (this one outlived its visibility timeout) is that worker's to settle.
        let settled = with_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE queue_jobs SET state = $1, available_at = $2, last_error = $3, held_by = NULL, held_until = NULL \
                 WHERE id = $4 AND state = 'held' AND held_by = $5 AND attempt = $6",
            )
            .bind(state).bind(available_at).bind(reason).bind(id).bind(&job.worker).bind(i64::from(job.attempt))
            .execute(pool).await?.rows_affected()
        });
        Ok(Failed::settled(settled > 0, give_up, wait))
    }

    async fn stats(&self) -> anyhow::Result<QueueStats> {
        let now = now_ms();
        let (waiting, in_flight, retrying, dead) = with_db_read!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT \
                   COALESCE(SUM(CASE WHEN state = 'ready' AND available_at <= $2 THEN 1 ELSE 0 END), 0) AS waiting, \
                   COALESCE(SUM(CASE WHEN state = 'held' THEN 1 ELSE 0 END), 0) AS in_flight, \
                   COALESCE(SUM(CASE WHEN state = 'ready' AND available_at > $2 THEN 1 ELSE 0 END), 0) AS retrying, \
                   COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) AS dead \
                 FROM queue_jobs WHERE queue = $1",
            )
            .bind(&self.queue).bind(now)
            .fetch_one(pool).await?;
            (row.int("waiting")?, row.int("in_flight")?, row.int("retrying")?, row.int("dead")?)
        });
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(QueueStats {
            waiting: count(waiting),
            in_flight: count(in_flight),
            retrying: count(retrying),
            dead: count(dead),
        })
    }

    async fn dead_letters(&self, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let letters = with_db_read!(&self.db, pool => {
            sqlx::query(
                "SELECT id, payload, attempt, last_error FROM queue_jobs WHERE queue = $1 AND state = 'dead' \
                 ORDER BY available_at DESC, id DESC LIMIT $2",
            )
            .bind(&self.queue).bind(limit)
            .fetch_all(pool).await?
            .iter()
            .map(|row| -> Result<DeadLetter, sqlx::Error> {
                Ok(DeadLetter {
                    id: row.id("id")?.to_string(),
                    payload: row.json("payload")?,
                    attempts: u32::try_from(row.int("attempt")?).unwrap_or(u32::MAX),
                    reason: sqlx::Row::try_get::<Option<String>, _>(row, "last_error")?.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(letters)
    }
}
