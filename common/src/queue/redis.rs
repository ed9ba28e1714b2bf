//! [`RedisQueue`]: the job queue in Redis, shared by every process of the mesh. Each
//! operation is one Lua script, so it is atomic and one round trip, and it reads Redis's
//! clock, so workers' clocks never matter. Keys, per queue `q` (the braces keep them on
//! one cluster slot): `kiln:queue:{q}:ready` (a list of ids, oldest at the right),
//! `…:held` and `…:retry` (sorted sets of ids by deadline and by due time), `…:payloads`,
//! `…:attempts`, `…:workers` (hashes by id) and `…:dead` (a list of dead letters, newest
//! first). Payloads stay opaque strings to the scripts.

use anyhow::Context;
use redis::{Script, aio::ConnectionManager};
use serde::Deserialize;
use serde_json::Value;

use super::{DeadLetter, Failed, Job, JobQueue, QueueSettings, QueueStats, millis};

/// Redis's time in milliseconds, inside a script.
const NOW: &str = "local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
";

const ENQUEUE: &str = "redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[1], 0)
redis.call('LPUSH', KEYS[1], ARGV[1])
return 1";

/// ARGV: worker, visibility (ms), max attempts.
const TAKE: &str = "
-- Retries whose wait is over join the queue.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('LPUSH', KEYS[1], id)
end
-- Jobs held past the visibility timeout are taken again, at the front, or given up on.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[6], id)
  local attempts = tonumber(redis.call('HGET', KEYS[5], id))
  if attempts >= tonumber(ARGV[3]) then
    local payload = redis.call('HGET', KEYS[4], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('LPUSH', KEYS[7], cjson.encode({id = id, payload = payload, attempts = attempts,
      reason = 'its worker held it past the visibility timeout on every attempt'}))
  else
    redis.call('RPUSH', KEYS[1], id)
  end
end
local id = redis.call('RPOP', KEYS[1])
if not id then return false end
local attempt = redis.call('HINCRBY', KEYS[5], id, 1)
redis.call('HSET', KEYS[6], id, ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
return {id, redis.call('HGET', KEYS[4], id), attempt}";

/// ARGV: id.
const COMPLETE: &str = "redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
return 1";

/// ARGV: id, worker, attempt, visibility (ms).
const KEEP: &str = "
local id = ARGV[1]
if redis.call('HGET', KEYS[6], id) ~= ARGV[2] or redis.call('HGET', KEYS[5], id) ~= ARGV[3] then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
return 1";

/// ARGV: id, worker, attempt, reason, 1 to give up, backoff (ms). Only while this worker
/// still holds this attempt: one taken again since is its new holder's to settle.
const FAIL: &str = "
local id = ARGV[1]
if redis.call('HGET', KEYS[6], id) ~= ARGV[2] or redis.call('HGET', KEYS[5], id) ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[6], id)
if ARGV[5] == '1' then
  local payload = redis.call('HGET', KEYS[4], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('LPUSH', KEYS[7], cjson.encode({id = id, payload = payload, attempts = tonumber(ARGV[3]), reason = ARGV[4]}))
else
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), id)
end
return 1";

/// The queue's scripts, each given every key of the queue.
struct Scripts {
    enqueue: Script,
    take: Script,
    complete: Script,
    fail: Script,
    keep: Script,
}

#[derive(Clone)]
pub struct RedisQueue {
    redis: ConnectionManager,
    /// ready, held, retry, payloads, attempts, workers, dead.
    keys: [String; 7],
    settings: QueueSettings,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue").field("ready", &self.keys[0]).field("settings", &self.settings).finish()
    }
}

/// A dead letter as the scripts write it: the payload still a string.
#[derive(Deserialize)]
struct StoredLetter {
    id: String,
    payload: String,
    attempts: u32,
    reason: String,
}

impl RedisQueue {
    /// The queue `queue` on the Redis at `url`, its keys under `prefix` (`kiln` unless
    /// installations share the Redis); the connection is remade when it breaks.
    pub async fn connect(url: &str, prefix: &str, queue: &str, settings: QueueSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("KILN_REDIS_URL is not a valid Redis URL")?;
        let redis = ConnectionManager::new(client).await.context("connecting to Redis")?;
        let key = |part: &str| format!("{prefix}:queue:{{{queue}}}:{part}");
        let keys = ["ready", "held", "retry", "payloads", "attempts", "workers", "dead"].map(key);
        let with_clock = |body: &str| Script::new(&format!("{NOW}{body}"));
        let scripts = Scripts {
            enqueue: Script::new(ENQUEUE),
            take: with_clock(TAKE),
            complete: Script::new(COMPLETE),
            fail: with_clock(FAIL),
            keep: with_clock(KEEP),
        };
        Ok(RedisQueue { redis, keys, settings, scripts: std::sync::Arc::new(scripts) })
    }

    /// `script` with every key of the queue, ready for its arguments.
    fn invocation<'a>(&'a self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        invocation
    }
}

#[tonic::async_trait]
impl JobQueue for RedisQueue {
    async fn enqueue(&self, payload: &Value) -> anyhow::Result<String> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut invocation = self.invocation(&self.scripts.enqueue);
        invocation.arg(&id).arg(payload.to_string());
        let _: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(id)
    }

    async fn take(&self, worker: &str) -> anyhow::Result<Option<Job>> {
        let mut invocation = self.invocation(&self.scripts.take);
        invocation.arg(worker).arg(millis(self.settings.visibility)).arg(self.settings.max_attempts);
        let taken: Option<(String, String, u32)> = invocation.invoke_async(&mut self.redis.clone()).await?;
        let Some((id, payload, attempt)) = taken else { return Ok(None) };
        let payload = serde_json::from_str(&payload).context("a job's payload in Redis is not JSON")?;
        Ok(Some(Job { id, payload, attempt, worker: worker.to_string() }))
    }

    async fn complete(&self, job: &Job) -> anyhow::Result<()> {
        let mut invocation = self.invocation(&self.scripts.complete);
        invocation.arg(&job.id);
        let _: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    async fn keep(&self, job: &Job) -> anyhow::Result<bool> {
        let mut invocation = self.invocation(&self.scripts.keep);
        invocation.arg(&job.id).arg(&job.worker).arg(job.attempt).arg(millis(self.settings.visibility));
        let kept: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(kept > 0)
    }

    async fn fail(&self, job: &Job, reason: &str) -> anyhow::Result<Failed> {
        let give_up = job.attempt >= self.settings.max_attempts;
        let wait = self.settings.backoff(job.attempt);
        let mut invocation = self.invocation(&self.scripts.fail);
        invocation.arg(&job.id).arg(&job.worker).arg(job.attempt).arg(reason).arg(u8::from(give_up)).arg(millis(wait));
        let settled: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(Failed::settled(settled > 0, give_up, wait))
    }

    async fn stats(&self) -> anyhow::Result<QueueStats> {
        let [ready, held, retry, _, _, _, dead] = &self.keys;
        let (waiting, in_flight, retrying, dead): (u64, u64, u64, u64) =
            redis::pipe().llen(ready).zcard(held).zcard(retry).llen(dead).query_async(&mut self.redis.clone()).await?;
        Ok(QueueStats { waiting, in_flight, retrying, dead })
    }

    async fn dead_letters(&self, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
        let Some(last) = limit.checked_sub(1) else { return Ok(Vec::new()) };
        let last = isize::try_from(last).unwrap_or(isize::MAX);
        let stored: Vec<String> =
            redis::cmd("LRANGE").arg(&self.keys[6]).arg(0).arg(last).query_async(&mut self.redis.clone()).await?;
        stored
            .iter()
            .map(|text| {
                let letter: StoredLetter = serde_json::from_str(text).context("a dead letter in Redis is not JSON")?;
                Ok(DeadLetter {
                    id: letter.id,
                    payload: serde_json::from_str(&letter.payload).context("a job's payload in Redis is not JSON")?,
                    attempts: letter.attempts,
                    reason: letter.reason,
                })
            })
            .collect()
    }
}
