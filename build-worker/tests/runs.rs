//! A build's runs against a real database (SQLite and PostgreSQL): each attempt's claim
//! fences the one before out, so a job taken again while its first worker still runs
//! never interleaves two runs' logs or results; a finished or cancelled build is not run
//! again.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use kiln_build_worker::{
    feed::LocalFeed,
    store::{self, BuildStore, ImageOutcome, Lost},
    worker::{ImageEngine, Worker},
};
use kiln_common::{
    Db,
    queue::{self, JobQueue, QueueSettings, TableQueue},
};
use kiln_proto::v1::BuildLogLine;
use serde_json::json;
use uuid::Uuid;

fn postgres_server_url() -> String {
    std::env::var("KILN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A store on a fresh database: SQLite in `dir`, or a new PostgreSQL database (its name
/// returned, to drop).
async fn store(postgres: bool, dir: &tempfile::TempDir) -> (BuildStore, Db, Option<String>) {
    let (url, name) = if postgres {
        let name = format!("kiln_runs_{}", Uuid::new_v4().simple());
        let server = postgres_server_url();
        let url = server.rsplit_once('/').map(|(server, _)| format!("{server}/{name}")).unwrap();
        (url, Some(name))
    } else {
        (format!("sqlite://{}", dir.path().join("kiln.db").display()), None)
    };
    let db = Db::connect(&url, Default::default()).await.unwrap();
    db.migrate(&kiln_build_worker::MIGRATIONS).await.unwrap();
    (BuildStore::new(db.clone()), db, name)
}

async fn drop_database(db: Db, name: Option<String>) {
    db.close().await;
    if let Some(name) = name {
        let server = sqlx::PgPool::connect(&postgres_server_url()).await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&server).await.unwrap();
    }
}

fn line(sequence: i64, message: &str) -> BuildLogLine {
    BuildLogLine { sequence, level: "info".into(), message: message.into(), ..Default::default() }
}

async fn a_new_run_fences_the_old_one_out(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, name) = store(postgres, &dir).await;
    let (workspace, user, application) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let build = store.open(workspace, user, application, "shop", &json!({ "templates": [] })).await.unwrap();
    let id = Uuid::parse_str(&build.id).unwrap();
    assert_eq!((build.number, build.status.as_str()), (1, store::QUEUED));
    let second = store.open(workspace, user, application, "shop", &json!({})).await.unwrap();
    assert_eq!(second.number, 2, "numbered per application");

    let first = store.claim(id).await.unwrap().expect("a queued build is claimed");
    assert_eq!((first.attempt, first.last_sequence), (1, 0));
    store.append_log(&first, &line(1, "first run"), Utc::now()).await.unwrap();
    // The job is taken again (the first worker looked dead): a new run, after the log so far.
    let again = store.claim(id).await.unwrap().expect("a running build is claimed again");
    assert_eq!((again.attempt, again.last_sequence), (2, 1));
    // The first run, still going, writes nothing more.
    let refused = store.append_log(&first, &line(2, "late"), Utc::now()).await.unwrap_err();
    assert!(refused.downcast_ref::<Lost>().is_some(), "{refused:#}");
    let refused = store.finish(&first, store::SUCCEEDED, &[], &ImageOutcome::default(), None).await.unwrap_err();
    assert!(refused.downcast_ref::<Lost>().is_some(), "{refused:#}");
    store.append_log(&again, &line(2, "second run"), Utc::now()).await.unwrap();
    let image = ImageOutcome {
        image_id: Some("sha256:1".into()),
        tags: vec!["kiln/w/shop:1".into()],
        size: Some(7),
        skipped: None,
    };
    store.finish(&again, store::SUCCEEDED, &[], &image, None).await.unwrap();
    let messages: Vec<String> = store.logs_after(id, 0, 100).await.unwrap().into_iter().map(|l| l.message).collect();
    assert_eq!(messages, ["first run", "second run"]);
    let finished = store.get(workspace, id).await.unwrap();
    assert_eq!((finished.status.as_str(), finished.attempts, finished.image_size), (store::SUCCEEDED, 2, 7));
    // A redelivery after the end runs nothing.
    assert!(store.claim(id).await.unwrap().is_none());
    assert!(store.get(Uuid::new_v4(), id).await.is_err(), "another workspace does not see it");

    // Cancelled while queued: never run; cancelled while running: the run loses it.
    let queued = Uuid::parse_str(&second.id).unwrap();
    store.cancel(workspace, queued).await.unwrap();
    assert!(store.claim(queued).await.unwrap().is_none());
    let third = store.open(workspace, user, application, "shop", &json!({})).await.unwrap();
    let third = Uuid::parse_str(&third.id).unwrap();
    let run = store.claim(third).await.unwrap().unwrap();
    let building =
        store::Step { name: "image".into(), status: "running".into(), started_at: Utc::now(), finished_at: None };
    store.progress(&run, store::BUILDING, &[building]).await.unwrap();
    let cancelled = store.cancel(workspace, third).await.unwrap();
    assert_eq!(cancelled.status, store::CANCELLED);
    let step = &cancelled.steps[0];
    assert_eq!(
        (step.status.as_str(), &step.finished_at),
        (store::CANCELLED, &cancelled.finished_at),
        "the open step ended with it"
    );
    assert!(store.append_log(&run, &line(1, "after cancel"), Utc::now()).await.is_err());
    assert!(store.cancel(workspace, third).await.is_err(), "a finished build cannot be cancelled");
    drop_database(db, name).await;
}

#[tokio::test]
async fn a_new_run_fences_the_old_one_out_on_sqlite() {
    a_new_run_fences_the_old_one_out(false).await;
}

#[tokio::test]
async fn a_new_run_fences_the_old_one_out_on_postgres() {
    a_new_run_fences_the_old_one_out(true).await;
}

/// A build whose attempt fails (its inputs cannot be read) is retried after a backoff,
/// back to `queued` with the reason, then given up on after its attempts: failed with
/// the reason, its job in the dead letters.
async fn failed_attempts_are_retried_then_dead_lettered(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, name) = store(postgres, &dir).await;
    db.migrate(&queue::MIGRATIONS).await.unwrap();
    let settings =
        QueueSettings { max_attempts: 2, first_backoff: Duration::from_millis(50), ..QueueSettings::default() };
    let jobs: Arc<dyn JobQueue> = Arc::new(TableQueue::new(db.clone(), "app_builds", settings));
    let worker = Worker {
        name: "w1".into(),
        store: store.clone(),
        queue: jobs.clone(),
        feed: Arc::new(LocalFeed::default()),
        generated_dir: dir.path().join("generated"),
        engine: ImageEngine::Off("not in this test".into()),
        keep_every: Duration::from_secs(10),
    };
    let workspace = Uuid::new_v4();
    let build = store
        .open(workspace, Uuid::new_v4(), Uuid::new_v4(), "shop", &json!({ "templates": "not a list" }))
        .await
        .unwrap();
    let id = Uuid::parse_str(&build.id).unwrap();
    jobs.enqueue(&json!({ "build_id": build.id, "workspace_id": workspace })).await.unwrap();

    let take = || async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(job) = jobs.take("w1").await.unwrap() {
                return job;
            }
            assert!(std::time::Instant::now() < deadline, "the job did not come back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    worker.handle(take().await).await;
    let retried = store.get(workspace, id).await.unwrap();
    assert_eq!((retried.status.as_str(), retried.attempts), (store::QUEUED, 1), "{retried:?}");
    assert!(retried.error.contains("attempt 1 failed") && retried.error.contains("retrying"), "{}", retried.error);
    assert_eq!(jobs.stats().await.unwrap().retrying + jobs.stats().await.unwrap().waiting, 1);

    worker.handle(take().await).await;
    let failed = store.get(workspace, id).await.unwrap();
    assert_eq!((failed.status.as_str(), failed.attempts), (store::FAILED, 2), "{failed:?}");
    assert!(failed.error.starts_with("gave up after 2 attempts"), "{}", failed.error);
    let letters = jobs.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload["build_id"], json!(build.id));
    assert!(letters[0].reason.contains("templates"), "{}", letters[0].reason);
    drop_database(db, name).await;
}

#[tokio::test]
async fn failed_attempts_are_retried_then_dead_lettered_on_sqlite() {
    failed_attempts_are_retried_then_dead_lettered(false).await;
}

#[tokio::test]
async fn failed_attempts_are_retried_then_dead_lettered_on_postgres() {
    failed_attempts_are_retried_then_dead_lettered(true).await;
}

/// A worker whose build was taken over while it ran (its lease ran out, another worker
/// took the job and claimed the build) stops without completing the job: the job stays
/// the other worker's.
#[tokio::test]
async fn a_run_taken_over_leaves_the_job_to_its_new_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, name) = store(false, &dir).await;
    db.migrate(&queue::MIGRATIONS).await.unwrap();
    let settings = QueueSettings { visibility: Duration::from_millis(200), ..QueueSettings::default() };
    let jobs: Arc<dyn JobQueue> = Arc::new(TableQueue::new(db.clone(), "app_builds", settings));
    let worker = Worker {
        name: "slow".into(),
        store: store.clone(),
        queue: jobs.clone(),
        feed: Arc::new(LocalFeed::default()),
        generated_dir: dir.path().join("generated"),
        engine: ImageEngine::Off("not in this test".into()),
        // It never renews its lease in this test: the lease runs out while it renders.
        keep_every: Duration::from_secs(600),
    };
    // A template that takes a while to render.
    let slow = json!({ "name": "slow", "output_path": "x.txt", "scope": "once",
        "body": "{% for i in range(end=100000) %}{% for j in range(end=300) %}{% endfor %}{% endfor %}done" });
    let workspace = Uuid::new_v4();
    let build =
        store.open(workspace, Uuid::new_v4(), Uuid::new_v4(), "shop", &json!({ "templates": [slow] })).await.unwrap();
    let id = Uuid::parse_str(&build.id).unwrap();
    jobs.enqueue(&json!({ "build_id": build.id, "workspace_id": workspace })).await.unwrap();
    let first = jobs.take("slow").await.unwrap().unwrap();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.handle(first).await }
    });
    // Another worker takes the job once the lease is over, and claims the build.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        if store.get(workspace, id).await.unwrap().attempts == 1
            && let Some(job) = jobs.take("fast").await.unwrap()
        {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "the job was not taken over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(second.attempt, 2);
    store.claim(id).await.unwrap().expect("the new holder claims the build");
    running.await.unwrap();
    let stats = jobs.stats().await.unwrap();
    assert_eq!((stats.in_flight, stats.waiting, stats.dead), (1, 0, 0), "the job is still the new holder's: {stats:?}");
    assert!(jobs.keep(&second).await.unwrap());
    drop_database(db, name).await;
}

#[tokio::test]
async fn a_job_naming_another_workspace_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, name) = store(false, &dir).await;
    db.migrate(&queue::MIGRATIONS).await.unwrap();
    let settings = QueueSettings { max_attempts: 1, ..QueueSettings::default() };
    let jobs: Arc<dyn JobQueue> = Arc::new(TableQueue::new(db.clone(), "app_builds", settings));
    let worker = Worker {
        name: "w1".into(),
        store: store.clone(),
        queue: jobs.clone(),
        feed: Arc::new(LocalFeed::default()),
        generated_dir: dir.path().join("generated"),
        engine: ImageEngine::Off("not in this test".into()),
        keep_every: Duration::from_secs(10),
    };
    let workspace = Uuid::new_v4();
    let build =
        store.open(workspace, Uuid::new_v4(), Uuid::new_v4(), "shop", &json!({ "templates": [] })).await.unwrap();
    let id = Uuid::parse_str(&build.id).unwrap();
    jobs.enqueue(&json!({ "build_id": build.id, "workspace_id": Uuid::new_v4() })).await.unwrap();
    worker.handle(jobs.take("w1").await.unwrap().expect("the job")).await;
    let untouched = store.get(workspace, id).await.unwrap();
    assert_eq!((untouched.status.as_str(), untouched.attempts), (store::QUEUED, 0), "{untouched:?}");
    let letters = jobs.dead_letters(10).await.unwrap();
    assert!(letters[0].reason.contains("another workspace's build"), "{}", letters[0].reason);
    drop_database(db, name).await;
}
