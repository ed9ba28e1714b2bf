//! Moving records and workspaces: `POST /{model}/import` (records or CSV, dry run, row
//! errors by line) and `kiln export` / `kiln import` of a whole workspace, from one
//! database into the other, compared record by record.

use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, assert_error, spawn_app, token};

crate::on_sqlite_and_postgres!(
    a_workspace_round_trips_through_an_archive_on_either_database,
    csv_rows_are_checked_by_line_and_bad_ones_write_nothing,
    imported_records_keep_their_ids_and_times_and_repeats_are_skipped,
);

/// A model with a field of every type, and a model it points at.
async fn with_specimens(app: &TestApp, email: &str) -> String {
    let access = token(&app.register(email).await, "access_token");
    let shelf = json!({ "name": "Shelf", "fields": [{ "name": "label", "type": "text", "required": true }] });
    let (status, body) = app.post_with_token("/api/v1/models", &access, shelf).await;
    assert_eq!(status, 201, "{body}");
    let specimen = json!({ "name": "Specimen", "fields": [
        { "name": "name", "type": "text", "required": true, "unique": true },
        { "name": "notes", "type": "long_text" },
        { "name": "count", "type": "integer" },
        { "name": "weight", "type": "decimal" },
        { "name": "dry", "type": "boolean", "default_value": false },
        { "name": "found_on", "type": "date" },
        { "name": "seen_at", "type": "datetime" },
        { "name": "finder", "type": "email" },
        { "name": "page", "type": "url" },
        { "name": "kind", "type": "enum", "enum_values": ["rock", "plant"] },
        { "name": "extra", "type": "json" },
        { "name": "tag", "type": "uuid" },
        { "name": "shelf", "type": "relation", "relation": { "target": "shelves", "kind": "many_to_one" } }
    ]});
    let (status, body) = app.post_with_token("/api/v1/models", &access, specimen).await;
    assert_eq!(status, 201, "{body}");
    access
}

/// Records of every kind of value, the odd ones included.
async fn fill(app: &TestApp, access: &str, specimens: usize) {
    let (status, shelf) = app.post_with_token("/api/v1/shelves", access, json!({ "label": "A" })).await;
    assert_eq!(status, 201, "{shelf}");
    let shelf = shelf["record"]["id"].clone();
    for i in 0..specimens {
        let record = json!({
            "name": format!("specimen {i} — “quoted”, with a comma\nand a line"),
            "notes": "ünïcödé ✓",
            "count": if i % 2 == 0 { json!("9007199254740993") } else { json!(i) },
            "weight": "10.50",
            "dry": i % 3 == 0,
            "found_on": "2026-02-28",
            "seen_at": "2026-03-01T09:30:00.123456Z",
            "finder": "ada@example.com",
            "page": "https://example.com/a?b=c",
            "kind": "rock",
            "extra": { "deep": [1, { "x": null }], "n": 1.5 },
            "tag": uuid::Uuid::new_v4().to_string(),
            "shelf": if i % 4 == 0 { Value::Null } else { shelf.clone() },
        });
        let (status, body) = app.post_with_token("/api/v1/specimens", access, record).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// A list's records by id.
async fn by_id(app: &TestApp, path: &str, access: &str) -> std::collections::BTreeMap<String, Value> {
    app.all_pages(path, "records", access)
        .await
        .into_iter()
        .map(|record| (record["id"].as_str().unwrap_or_default().to_string(), record))
        .collect()
}

/// Every shelf and specimen of `a` is in `b`, field for field, with its id, times and
/// author; with `decimals_by_value`, decimals compare as numbers.
async fn assert_same_records(a: &TestApp, a_access: &str, b: &TestApp, b_access: &str, decimals_by_value: bool) {
    for path in ["/api/v1/shelves", "/api/v1/specimens"] {
        let (before, after) = (by_id(a, path, a_access).await, by_id(b, path, b_access).await);
        assert_eq!(before.len(), after.len(), "{path}");
        for (id, mut record) in before {
            let mut got = after.get(&id).cloned().unwrap_or_else(|| panic!("{path}: {id} is missing"));
            if decimals_by_value {
                for value in [&mut record["weight"], &mut got["weight"]] {
                    if let Some(number) = value.as_str().and_then(|d| d.parse::<f64>().ok()) {
                        *value = json!(number);
                    }
                }
            }
            assert_eq!(record, got, "{path}: {id}");
        }
    }
}

/// The fields of the model `specimens` as the API shows them.
async fn specimen_fields(app: &TestApp, access: &str) -> Value {
    let (status, model) = app.get_with_token("/api/v1/models/specimens", access).await;
    assert_eq!(status, 200, "{model}");
    model["model"]["fields"].clone()
}

/// `kiln <args>` with the access token: (exit code, stdout, stderr).
async fn kiln(args: &[&str], access: &str) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_TOKEN", access)
        .output()
        .await
        .expect("kiln runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

async fn a_workspace_round_trips_through_an_archive_on_either_database(backend: Backend) {
    let source = spawn_app(backend).await;
    let access = with_specimens(&source, "ada@example.com").await;
    fill(&source, &access, 130).await;
    let (status, template) = source
        .post_with_token(
            "/api/v1/templates",
            &access,
            json!({ "set": "mine", "name": "readme", "output_path": "README.md", "body": "# {{ app.name }}", "scope": "once" }),
        )
        .await;
    assert_eq!(status, 201, "{template}");
    let (status, workflow) = source
        .post_with_token(
            "/api/v1/workflows",
            &access,
            json!({ "name": "Note", "trigger": { "kind": "manual" }, "actions": [
                { "name": "call", "kind": "http_request", "config": { "url": "http://127.0.0.1:9/hook" } }
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{workflow}");
    let (status, prompt) = source
        .post_with_token(
            "/api/v1/prompts",
            &access,
            json!({ "name": "Greet", "type": "llm", "content": "Hello {{ name }}", "variables": ["name"] }),
        )
        .await;
    assert_eq!(status, 201, "{prompt}");

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("workspace.tar.gz");
    let archive = archive.to_str().unwrap();
    let (code, out, err) = kiln(&["export", "--url", &source.url(""), "--to", archive], &access).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("exported specimens: 130 records"), "{out}");
    assert!(out.contains("exported shelves: 1 records") && out.contains("exported: 2 models, "), "{out}");

    // Into a fresh instance on the same database: exactly as it was. On the other one
    // too, where a decimal's scale is the store's (SQLite keeps 10.50 as 10.5).
    let other = if backend == Backend::Sqlite { Backend::Postgres } else { Backend::Sqlite };
    let elsewhere = spawn_app(other).await;
    let elsewhere_access = token(&elsewhere.register("grace@example.com").await, "access_token");
    let (code, out, err) = kiln(&["import", "--url", &elsewhere.url(""), "--from", archive], &elsewhere_access).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_same_records(&source, &access, &elsewhere, &elsewhere_access, true).await;
    elsewhere.stop().await;

    let target = spawn_app(backend).await;
    let target_access = token(&target.register("grace@example.com").await, "access_token");
    let url = target.url("");
    let (code, out, err) = kiln(&["import", "--url", &url, "--from", archive, "--dry-run"], &target_access).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("model specimens: would be created"), "{out}");
    let (status, _) = target.get_with_token("/api/v1/models/specimens", &target_access).await;
    assert_eq!(status, 404, "a dry run creates nothing");

    let (code, out, err) = kiln(&["import", "--url", &url, "--from", archive], &target_access).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("model shelves: created") && out.contains("model specimens: created"), "{out}");
    assert!(out.contains("imported specimens: 130/130 records (130 imported, 0 skipped)"), "{out}");
    assert_same_records(&source, &access, &target, &target_access, false).await;
    for (path, made) in
        [("/api/v1/templates", &template), ("/api/v1/workflows", &workflow), ("/api/v1/prompts", &prompt)]
    {
        let id = made["record"]["id"].as_str().unwrap();
        let (status, got) = target.get_with_token(&format!("{path}/{id}"), &target_access).await;
        assert_eq!(status, 200, "{path}: {got}");
        assert_eq!(got["record"], made["record"], "{path}");
    }
    assert_eq!(specimen_fields(&source, &access).await, specimen_fields(&target, &target_access).await);

    // Again: everything is there already.
    let (code, out, err) = kiln(&["import", "--url", &url, "--from", archive], &target_access).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("model specimens: already here, with the same fields"), "{out}");
    assert!(out.contains("imported specimens: 130/130 records (0 imported, 130 skipped)"), "{out}");

    // Wrong inputs: no token, not an archive, a model of the same name with other fields.
    let (code, _, err) = kiln(&["import", "--url", &url, "--from", archive], "").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("access token"), "{err}");
    let not_one = dir.path().join("not-one.tar.gz");
    std::fs::write(&not_one, b"hello").unwrap();
    let (code, _, err) = kiln(&["import", "--url", &url, "--from", not_one.to_str().unwrap()], &target_access).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not a Kiln workspace export"), "{err}");
    let backup = dir.path().join("backup.tar.gz");
    {
        let manifest = br#"{ "format": "kiln-backup", "version": 1 }"#;
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&backup).unwrap(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, "manifest.json", &manifest[..]).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let (code, _, err) = kiln(&["import", "--url", &url, "--from", backup.to_str().unwrap()], &target_access).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not a Kiln workspace export (its manifest says `kiln-backup`)"), "{err}");
    let third = token(&target.register("linus@example.com").await, "access_token");
    let (status, body) = target
        .post_with_token(
            "/api/v1/models",
            &third,
            json!({ "name": "Shelf", "fields": [{ "name": "size", "type": "integer" }] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (code, _, err) = kiln(&["import", "--url", &url, "--from", archive], &third).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("model `shelves` whose fields differ"), "{err}");
    let (status, page) = target.get_with_token("/api/v1/shelves", &third).await;
    assert_eq!((status, page["records"].as_array().map(Vec::len)), (200, Some(0)), "nothing was written: {page}");

    source.stop().await;
    target.stop().await;
}

async fn csv_rows_are_checked_by_line_and_bad_ones_write_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_specimens(&app, "ada@example.com").await;
    // Line 3's quoted cell runs over two lines, so the next row is line 5.
    let csv = "name,count,dry,extra,found_on\n\
               one,1,true,\"{\"\"a\"\": 1}\",2026-01-31\n\
               \"two,\nlines\",2,false,,\n\
               three,many,maybe,{bad,31/01/2026\n\
               ,4,,,\n";
    let (status, checked) =
        app.post_with_token("/api/v1/specimens/import", &access, json!({ "csv": csv, "dry_run": true })).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!((checked["checked"].as_i64(), checked["imported"].as_i64()), (Some(4), Some(2)), "{checked}");
    let errors: Vec<(i64, &str)> = checked["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    // By line, and within one in the model's order of fields.
    assert_eq!(errors, [(5, "count"), (5, "dry"), (5, "found_on"), (5, "extra"), (6, "name")], "{checked}");

    let (status, refused) = app.post_with_token("/api/v1/specimens/import", &access, json!({ "csv": csv })).await;
    let details = &assert_error(status, &refused, 400, "invalid_argument")["details"];
    assert_eq!(details[0]["field"], "line 5: count", "{refused}");
    assert_eq!(details[4]["field"], "line 6: name", "{refused}");
    assert_eq!(refused["error"]["message"], "2 rows have errors; nothing was imported");
    assert_eq!(details.as_array().map(Vec::len), Some(5));
    let (_, page) = app.get_with_token("/api/v1/specimens", &access).await;
    assert_eq!(page["records"], json!([]), "a row error writes nothing");

    let good = "name,count,dry,extra,found_on\none,1,true,\"{\"\"a\"\": 1}\",2026-01-31\n\"two,\nlines\",2,false,,\n";
    let (status, done) = app.post_with_token("/api/v1/specimens/import", &access, json!({ "csv": good })).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["imported"].as_i64(), done["skipped"].as_i64()), (Some(2), Some(0)), "{done}");
    let records = app.all_pages("/api/v1/specimens?sort=name", "records", &access).await;
    assert_eq!(records[0]["extra"], json!({ "a": 1 }));
    assert_eq!(
        (&records[0]["count"], &records[0]["dry"], &records[0]["found_on"]),
        (&json!(1), &json!(true), &json!("2026-01-31"))
    );
    assert_eq!(records[1]["name"], "two,\nlines");
    assert_eq!(records[1]["extra"], Value::Null, "an empty cell leaves the field out");

    // A unique value taken fails the import at its line, and nothing of it is written.
    let (status, taken) =
        app.post_with_token("/api/v1/specimens/import", &access, json!({ "csv": "name\nthree\none\n" })).await;
    let message = assert_error(status, &taken, 409, "already_exists")["message"].clone();
    assert_eq!(message, "line 3: another record already has this name", "{taken}");
    let names: Vec<Value> = app
        .all_pages("/api/v1/specimens?sort=name", "records", &access)
        .await
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("one"), json!("two,\nlines")], "the rows before it are not written either");

    // The call itself wrong.
    for (body, field) in [
        (json!({ "csv": "name,colour\none,red\n" }), "csv"),
        (json!({ "csv": "name\none\n", "records": [{ "name": "x" }] }), "csv"),
        (json!({ "csv": "name,count\none\n" }), "csv"),
        (json!({}), "records"),
    ] {
        let (status, refused) = app.post_with_token("/api/v1/specimens/import", &access, body.clone()).await;
        let details = &assert_error(status, &refused, 400, "invalid_argument")["details"];
        assert_eq!(details[0]["field"], field, "{body}: {refused}");
    }
    let (status, missing) = app.post_with_token("/api/v1/nothings/import", &access, json!({ "csv": "a\n1\n" })).await;
    assert_error(status, &missing, 404, "not_found");
    let (status, anonymous) = app.post("/api/v1/specimens/import", json!({ "csv": "name\nx\n" })).await;
    assert_error(status, &anonymous, 401, "unauthenticated");
    app.stop().await;
}

async fn imported_records_keep_their_ids_and_times_and_repeats_are_skipped(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = with_specimens(&app, "ada@example.com").await;
    let (id, author) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    let kept = json!({
        "id": id, "created_at": "2020-05-01T10:00:00.000001Z", "updated_at": "2021-06-02T11:00:00Z",
        "created_by": author, "name": "old one", "count": 3
    });
    let without = json!({ "name": "new one" });
    let (status, done) =
        app.post_with_token("/api/v1/specimens/import", &access, json!({ "records": [kept, without] })).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["imported"], 2);
    let (status, got) = app.get_with_token(&format!("/api/v1/specimens/{id}"), &access).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["record"]["created_at"], "2020-05-01T10:00:00.000001Z");
    assert_eq!(got["record"]["updated_at"], "2021-06-02T11:00:00.000000Z");
    assert_eq!((&got["record"]["created_by"], &got["record"]["count"]), (&json!(author), &json!(3)));
    let made = app.all_pages("/api/v1/specimens?name=new one", "records", &access).await;
    assert_eq!(made.len(), 1);
    assert_ne!(made[0]["created_at"], got["record"]["created_at"], "a row without times is made now");

    // The same id again is skipped, not changed; a repeated id within one call is a row error.
    let changed = json!({ "id": id, "name": "old one, changed" });
    let (status, again) =
        app.post_with_token("/api/v1/specimens/import", &access, json!({ "records": [changed] })).await;
    assert_eq!((status, &again["skipped"], &again["imported"]), (200, &json!(1), &json!(0)), "{again}");
    let (_, still) = app.get_with_token(&format!("/api/v1/specimens/{id}"), &access).await;
    assert_eq!(still["record"]["name"], "old one");
    let twice = json!({ "records": [{ "id": author, "name": "a" }, { "id": author, "name": "b" }], "dry_run": true });
    let (status, checked) = app.post_with_token("/api/v1/specimens/import", &access, twice).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["errors"], json!([{ "line": 2, "field": "id", "description": "repeats the id of line 1" }]));
    let bad_times = json!({ "records": [
        { "id": "nope", "created_at": "yesterday", "name": "c" },
        { "id": null, "created_at": null, "name": "d" }
    ], "dry_run": true });
    let (_, checked) = app.post_with_token("/api/v1/specimens/import", &access, bad_times).await;
    let fields: Vec<&str> = checked["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["id", "created_at"], "{checked}");

    // In a table the workspaces share (templates), an id another workspace holds is not
    // skipped and not touched: the record is imported under a new one.
    let template =
        json!({ "set": "mine", "name": "readme", "output_path": "README.md", "body": "# hi", "scope": "once" });
    let (status, made) = app.post_with_token("/api/v1/templates", &access, template.clone()).await;
    assert_eq!(status, 201, "{made}");
    let taken = made["record"]["id"].as_str().unwrap();
    let other = token(&app.register("grace@example.com").await, "access_token");
    let mut theirs = template.clone();
    theirs["id"] = json!(taken);
    theirs["body"] = json!("# theirs");
    let (status, done) = app.post_with_token("/api/v1/templates/import", &other, json!({ "records": [theirs] })).await;
    assert_eq!((status, &done["imported"]), (200, &json!(1)), "{done}");
    let mine = app.all_pages("/api/v1/templates?set=mine", "records", &other).await;
    assert_eq!(mine.len(), 1);
    assert_ne!(mine[0]["id"], json!(taken));
    assert_eq!(mine[0]["body"], "# theirs");
    let (_, first) = app.get_with_token(&format!("/api/v1/templates/{taken}"), &access).await;
    assert_eq!(first["record"]["body"], "# hi");
    app.stop().await;
}
