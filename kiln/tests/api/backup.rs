//! `kiln backup` while a writer is busy, `kiln restore` into an empty instance, and the
//! restored Kiln's answers compared with the original's; archives Kiln must refuse.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use kiln_common::config::Role;
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, TestDatabase, spawn_app_with, test_config, token};

/// `kiln <args>` against the database `url` and data dir `data`: (exit code, stdout, stderr).
fn kiln(args: &[&str], url: &str, data: &Path) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_DATABASE_URL", url)
        .env("KILN_DATA_DIR", data)
        .env_remove("KILN_JWT_SECRET")
        .output()
        .expect("kiln runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

/// The answers a restore must keep, read through the API.
async fn answers(app: &TestApp, access: &str) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for (path, key) in [
        ("/api/v1/models", "models"),
        ("/api/v1/applications", "applications"),
        ("/api/v1/templates", "records"),
        ("/api/v1/workflows", "records"),
        ("/api/v1/prompts", "records"),
    ] {
        all.push((path.to_string(), Value::Array(app.all_pages(path, key, access).await)));
    }
    let (status, profile) = app.get_with_token("/api/v1/auth/profile", access).await;
    assert_eq!(status, 200, "{profile}");
    all.push(("/api/v1/auth/profile".into(), profile));
    all
}

crate::on_sqlite_and_postgres!(a_backup_under_writes_restores_into_an_empty_instance_with_identical_answers);

async fn a_backup_under_writes_restores_into_an_empty_instance_with_identical_answers(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_path_buf();
    let app = spawn_app_with(backend, |config| config.data_dir = data_dir.clone()).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "amount", "type": "decimal" },
        { "name": "paid", "type": "boolean" },
        { "name": "due", "type": "date" },
        { "name": "meta", "type": "json" },
    ]});
    let (status, created) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{created}");
    for n in 0..20 {
        let record = json!({ "number": format!("INV-{n}"), "amount": format!("{n}.5"), "paid": n % 2 == 0,
                             "due": "2026-12-31", "meta": { "n": n } });
        assert_eq!(app.post_with_token("/api/v1/invoices", &access, record).await.0, 201);
    }

    // A writer busy throughout the backup.
    let (stop, written) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let writer = {
        let (stop, written, http, url, access) =
            (stop.clone(), written.clone(), app.http.clone(), app.url("/api/v1/invoices"), access.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = written.load(Ordering::SeqCst);
                let response =
                    http.post(&url).bearer_auth(&access).json(&json!({ "number": format!("W-{n}") })).send().await;
                if response.is_ok_and(|r| r.status() == 201) {
                    written.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while written.load(Ordering::SeqCst) < 5 {
        assert!(Instant::now() < deadline, "the writer made no records");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = 20 + written.load(Ordering::SeqCst);
    let archive = data.path().join("kiln-backup.tar.gz");
    let archive_arg = archive.display().to_string();
    let url = app.database_url().to_string();
    let backed_up = tokio::task::spawn_blocking({
        let (archive_arg, url, data_dir) = (archive_arg.clone(), url.clone(), data.path().to_path_buf());
        move || kiln(&["backup", "--to", &archive_arg], &url, &data_dir)
    })
    .await
    .unwrap();
    let during = written.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_eq!(backed_up.0, Some(0), "{backed_up:?}");
    assert!(backed_up.1.starts_with("backed up: "), "{backed_up:?}");
    assert!(during > before - 20, "the writer was busy while the backup ran");
    let source_records = app.all_pages("/api/v1/invoices", "records", &access).await;
    let source_answers = answers(&app, &access).await;

    // Into an empty instance of the same kind.
    let restored_db = TestDatabase::new(backend);
    let restored_data = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = kiln(&["restore", "--from", &archive_arg], &restored_db.url, restored_data.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("restored: "), "{stdout}");
    let (code, _, stderr) = kiln(&["restore", "--from", &archive_arg], &restored_db.url, restored_data.path());
    assert_eq!(code, Some(1), "a second restore into the now full target is refused: {stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");

    let mut config = test_config(Role::AllInOne, &restored_db);
    config.database_url = restored_db.url.clone();
    config.data_dir = restored_data.path().to_path_buf();
    let restored = TestApp::of(vec![kiln::start(config).await.expect("the restored Kiln starts")], restored_db).await;
    // The same token works: the sessions and the token secret came along.
    assert_eq!(answers(&restored, &access).await, source_answers);
    let records = restored.all_pages("/api/v1/invoices", "records", &access).await;
    assert!(records.len() >= before && records.len() <= 20 + during, "{} records: a cut of the writes", records.len());
    for record in &records {
        let source = source_records.iter().find(|s| s["id"] == record["id"]).expect("a record the source has");
        assert_eq!(record, source);
    }
    // The restored instance takes writes.
    assert_eq!(restored.post_with_token("/api/v1/invoices", &access, json!({ "number": "AFTER" })).await.0, 201);
    restored.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn archives_that_are_not_kiln_backups_of_this_kind_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestDatabase::new(Backend::Sqlite);
    let restore = |archive: &Path| {
        kiln(&["restore", "--from", &archive.display().to_string()], &target.url, &dir.path().join("data"))
    };

    let garbage = dir.path().join("garbage.tar.gz");
    std::fs::write(&garbage, b"these are not the bytes of a backup").unwrap();
    let (code, _, stderr) = restore(&garbage);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is not a Kiln backup"), "{stderr}");

    let (code, _, stderr) = restore(&dir.path().join("missing.tar.gz"));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("opening") && stderr.contains("missing.tar.gz"), "{stderr}");

    let archive_with = |name: &str, manifest: Value| {
        let path = dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, "manifest.json", bytes.as_slice()).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        path
    };
    let manifest = |version: u32, database: &str| {
        json!({ "format": "kiln-backup", "version": version, "database": database, "kiln_version": "9.9.9",
                "created_at": "2026-12-01T00:00:00Z", "files": [] })
    };
    let (code, _, stderr) = restore(&archive_with("future.tar.gz", manifest(99, "sqlite")));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("format version 99") && stderr.contains("reads version 1"), "{stderr}");

    let (code, _, stderr) = restore(&archive_with("postgres.tar.gz", manifest(1, "postgres")));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("a postgres database and KILN_DATABASE_URL names a sqlite one"), "{stderr}");

    let (code, _, stderr) = kiln(
        &["backup", "--to", &dir.path().join("none.tar.gz").display().to_string()],
        &format!("sqlite://{}", dir.path().join("no-such.db").display()),
        dir.path(),
    );
    assert_eq!(code, Some(1));
    assert!(stderr.contains("there is no database at"), "{stderr}");
    assert!(!dir.path().join("none.tar.gz").exists(), "no archive is left behind");
}
