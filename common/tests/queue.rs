//! The job queue's guarantees, one suite run against each backend for real: the table
//! queue on SQLite and on PostgreSQL, and the Redis queue.

use std::{collections::HashSet, future::Future, sync::Arc, time::Duration};

use kiln_common::{
    Db,
    queue::{Failed, Job, JobQueue, MIGRATIONS, QueueSettings, RedisQueue, TableQueue},
};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
    Redis,
}

/// A fresh queue on `backend`, with what must be dropped when the test ends.
struct TestQueue {
    queue: Arc<dyn JobQueue>,
    _dir: tempfile::TempDir,
    postgres_database: Option<String>,
    /// The Redis keys' queue name.
    redis_queue: Option<String>,
}

fn redis_url() -> String {
    std::env::var("KILN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn postgres_server_url() -> String {
    std::env::var("KILN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestQueue {
    async fn new(backend: Backend, settings: QueueSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let redis_queue = matches!(backend, Backend::Redis).then(|| name.clone());
        let (queue, postgres_database): (Arc<dyn JobQueue>, _) = match backend {
            Backend::Sqlite => {
                let db = Db::connect(&format!("sqlite://{}", dir.path().join("kiln.db").display()), Default::default())
                    .await
                    .unwrap();
                db.migrate(&MIGRATIONS).await.unwrap();
                (Arc::new(TableQueue::new(db, "builds", settings)), None)
            }
            Backend::Postgres => {
                let url = postgres_server_url().rsplit_once('/').map(|(server, _)| format!("{server}/{name}")).unwrap();
                let db = Db::connect(&url, Default::default()).await.unwrap();
                db.migrate(&MIGRATIONS).await.unwrap();
                (Arc::new(TableQueue::new(db, "builds", settings)), Some(name))
            }
            Backend::Redis => {
                (Arc::new(RedisQueue::connect(&redis_url(), "kiln", &name, settings).await.unwrap()), None)
            }
        };
        TestQueue { queue, _dir: dir, postgres_database, redis_queue }
    }

    /// Drops the test's PostgreSQL database or Redis keys.
    async fn drop_database(self) {
        if let Some(name) = &self.redis_queue {
            let mut redis =
                ::redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> =
                ::redis::cmd("KEYS").arg(format!("kiln:queue:{{{name}}}:*")).query_async(&mut redis).await.unwrap();
            if !keys.is_empty() {
                let () = ::redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
            }
        }
        if let Some(name) = self.postgres_database {
            drop(self.queue);
            let admin = sqlx::PgPool::connect(&postgres_server_url()).await.unwrap();
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await.unwrap();
            admin.close().await;
        }
    }
}

/// Polls `attempt` until it gives something, for at most 10 s.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut attempt: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        if let Some(found) = attempt().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within 10 s");
        tick.tick().await;
    }
}

async fn take_eventually(queue: &dyn JobQueue, worker: &str) -> Job {
    eventually("a job to take", || async { queue.take(worker).await.unwrap() }).await
}

macro_rules! on_every_queue {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
        mod redis { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Redis).await })* }
    };
}

on_every_queue!(
    jobs_are_taken_oldest_first_and_leave_when_done,
    a_job_held_past_the_visibility_timeout_is_taken_again,
    failures_retry_with_backoff_then_land_in_the_dead_letters,
    a_job_whose_worker_keeps_dying_is_given_up,
    workers_never_share_a_job,
);

async fn jobs_are_taken_oldest_first_and_leave_when_done(backend: Backend) {
    let test = TestQueue::new(backend, QueueSettings::default()).await;
    let queue = test.queue.as_ref();
    let payloads =
        [json!({ "build_id": 1, "big": 9007199254740993u64 }), json!({ "build_id": 2, "none": {} }), json!([])];
    let mut ids = Vec::new();
    for payload in &payloads {
        ids.push(queue.enqueue(payload).await.unwrap());
    }
    assert_eq!(queue.stats().await.unwrap().waiting, 3);
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(queue.take("w1").await.unwrap().expect("a waiting job"));
    }
    assert!(queue.take("w1").await.unwrap().is_none(), "every job is held");
    assert_eq!(
        taken.iter().map(|j| j.payload.clone()).collect::<Vec<_>>(),
        payloads,
        "payloads kept exactly, in order"
    );
    assert_eq!(taken.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), ids);
    assert!(taken.iter().all(|j| j.attempt == 1 && j.worker == "w1"));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (0, 3));
    for job in &taken {
        queue.complete(job).await.unwrap();
    }
    assert_eq!(queue.stats().await.unwrap(), Default::default());
    assert!(queue.take("w1").await.unwrap().is_none());
    test.drop_database().await;
}

async fn a_job_held_past_the_visibility_timeout_is_taken_again(backend: Backend) {
    let settings = QueueSettings { visibility: Duration::from_secs(1), ..Default::default() };
    let test = TestQueue::new(backend, settings).await;
    let queue = test.queue.as_ref();
    queue.enqueue(&json!({ "build_id": 7 })).await.unwrap();
    let first = queue.take("dies").await.unwrap().unwrap();
    assert!(queue.take("lives").await.unwrap().is_none(), "held, within its visibility timeout");
    let again = take_eventually(queue, "lives").await;
    assert_eq!((again.id.as_str(), again.attempt, &again.payload), (first.id.as_str(), 2, &first.payload));
    // The first holder coming back late changes nothing: the job is the new holder's.
    assert!(!queue.keep(&first).await.unwrap(), "no longer the first holder's to keep");
    assert_eq!(queue.fail(&first, "late").await.unwrap(), Failed::NoLongerHeld);
    // A holder that keeps its job keeps it past the timeout it was taken with.
    let kept_until = std::time::Instant::now() + Duration::from_millis(2500);
    while std::time::Instant::now() < kept_until {
        assert!(queue.keep(&again).await.unwrap());
        assert!(queue.take("other").await.unwrap().is_none(), "a kept job is not taken again");
        tokio::task::yield_now().await;
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.in_flight, stats.retrying, stats.dead), (1, 0, 0), "{stats:?}");
    queue.complete(&again).await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), Default::default());
    test.drop_database().await;
}

async fn failures_retry_with_backoff_then_land_in_the_dead_letters(backend: Backend) {
    let settings = QueueSettings {
        max_attempts: 3,
        first_backoff: Duration::from_millis(300),
        visibility: Duration::from_secs(60),
    };
    let test = TestQueue::new(backend, settings).await;
    let queue = test.queue.as_ref();
    let payload = json!({ "build_id": 3 });
    queue.enqueue(&payload).await.unwrap();
    for attempt in 1..=3 {
        let job = take_eventually(queue, "w").await;
        assert_eq!(job.attempt, attempt);
        let outcome = queue.fail(&job, &format!("boom {attempt}")).await.unwrap();
        if attempt < 3 {
            assert_eq!(outcome, Failed::Retrying(Duration::from_millis(300 << (attempt - 1))));
            assert_eq!(queue.stats().await.unwrap().retrying, 1);
            assert!(queue.take("w").await.unwrap().is_none(), "not before its backoff");
        } else {
            assert_eq!(outcome, Failed::Dead);
        }
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight, stats.retrying, stats.dead), (0, 0, 0, 1));
    let letters = queue.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((&letters[0].payload, letters[0].attempts, letters[0].reason.as_str()), (&payload, 3, "boom 3"));
    assert!(queue.take("w").await.unwrap().is_none(), "a dead job is not taken");
    test.drop_database().await;
}

async fn a_job_whose_worker_keeps_dying_is_given_up(backend: Backend) {
    let settings = QueueSettings { visibility: Duration::from_millis(200), max_attempts: 2, ..Default::default() };
    let test = TestQueue::new(backend, settings).await;
    let queue = test.queue.as_ref();
    queue.enqueue(&json!({ "build_id": 4 })).await.unwrap();
    assert_eq!(queue.take("first").await.unwrap().unwrap().attempt, 1);
    assert_eq!(take_eventually(queue, "second").await.attempt, 2);
    // Its last holder died too: the next look gives it up instead of handing it out.
    eventually("the job to be dead-lettered", || async {
        assert!(queue.take("third").await.unwrap().is_none(), "taken a third time");
        (queue.stats().await.unwrap().dead == 1).then_some(())
    })
    .await;
    let letters = queue.dead_letters(1).await.unwrap();
    assert_eq!(letters[0].attempts, 2);
    assert!(letters[0].reason.contains("visibility timeout"), "{letters:?}");
    test.drop_database().await;
}

async fn workers_never_share_a_job(backend: Backend) {
    let test = TestQueue::new(backend, QueueSettings::default()).await;
    for n in 0..60 {
        test.queue.enqueue(&json!({ "n": n })).await.unwrap();
    }
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let queue = test.queue.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                while let Some(job) = queue.take(&format!("w{w}")).await.unwrap() {
                    taken.push(job.payload["n"].as_i64().unwrap());
                }
                taken
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    assert_eq!(all.len(), 60, "each job taken once");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 60);
    assert_eq!(test.queue.stats().await.unwrap().in_flight, 60);
    test.drop_database().await;
}

/// All-in-one, the queue is a table of the embedded database: a job waits through a
/// restart of the process.
#[tokio::test]
async fn a_table_queue_keeps_its_jobs_through_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kiln.db").display());
    let db = Db::connect(&url, Default::default()).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let id = TableQueue::new(db.clone(), "builds", QueueSettings::default()).enqueue(&json!({ "n": 1 })).await.unwrap();
    db.close().await;

    let db = Db::connect(&url, Default::default()).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let job = TableQueue::new(db.clone(), "builds", QueueSettings::default()).take("after-restart").await.unwrap();
    let job = job.expect("the job is still there");
    assert_eq!((job.id, job.payload), (id, json!({ "n": 1 })));
    let other = TableQueue::new(db, "other", QueueSettings::default());
    assert!(other.take("w").await.unwrap().is_none(), "queues keep to their own jobs");
}
