//! The seeded `rust-axum` set generates working services: a corpus of model shapes
//! (every field type, every rule, relations, names that are keywords elsewhere, a model
//! without fields, many models, a field no value can be made up for, names that need
//! escaping) rendered exactly as a build renders them, each compiled and its own tests
//! run (`cargo test`), one of them on PostgreSQL. The apps share one target directory, so
//! their dependencies compile once.

use std::path::{Path, PathBuf};

use kiln_common::{seeds, templating};
use kiln_proto::v1::{Field, Model, Relation};
use serde_json::{Value, json};

fn field(name: &str, kind: &str) -> Field {
    Field { name: name.into(), label: String::new(), r#type: kind.into(), ..Default::default() }
}

fn model(name: &str, singular: &str, plural: &str, fields: Vec<Field>) -> Model {
    Model {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        singular: singular.into(),
        plural: plural.into(),
        slug: singular.into(),
        label: name.into(),
        label_plural: format!("{name}s"),
        version: 1,
        fields,
        table_name: format!("ent_{plural}"),
        ..Default::default()
    }
}

fn relation(name: &str, target: &str, on_delete: &str, required: bool) -> Field {
    Field {
        relation: Some(Relation { target: target.into(), kind: "many_to_one".into(), on_delete: on_delete.into() }),
        required,
        ..field(name, "relation")
    }
}

/// The shapes: (slug, models).
fn corpus() -> Vec<(&'static str, Vec<Model>)> {
    let every_type =
        ["text", "long_text", "integer", "decimal", "boolean", "date", "datetime", "email", "url", "json", "uuid"]
            .iter()
            .map(|kind| field(&format!("a_{kind}"), kind))
            .chain([Field { enum_values: vec!["low".into(), "high".into()], ..field("a_enum", "enum") }])
            .collect();
    let rules = vec![
        Field { required: true, unique: true, min_length: Some(3), max_length: Some(40), ..field("code", "text") },
        Field { min: Some(-5.0), max: Some(1000.0), required: true, ..field("quantity", "integer") },
        Field { min: Some(0.5), max: Some(99.5), ..field("price", "decimal") },
        Field {
            pattern: "^SKU-[0-9]{3}$".into(),
            default_value: Some(kiln_proto::wkt::Value::from("SKU-001".to_string())),
            ..field("sku", "text")
        },
        Field { required: true, enum_values: vec!["new".into(), "used".into()], ..field("state", "enum") },
        Field { required: true, unique: true, ..field("contact", "email") },
        Field { default_value: Some(kiln_proto::wkt::Value::from(true)), ..field("active", "boolean") },
    ];
    let customers = model("Customer", "customer", "customers", vec![Field { required: true, ..field("name", "text") }]);
    let invoices = model(
        "Invoice",
        "invoice",
        "invoices",
        vec![
            Field { required: true, ..field("number", "text") },
            relation("customer", "customers", "cascade", true),
            relation("owner", "users", "restrict", false),
        ],
    );
    let categories = model(
        "Category",
        "category",
        "categories",
        vec![field("title", "text"), relation("parent", "categories", "set_null", false)],
    );
    let keywords = model(
        "Crate",
        "crate",
        "crates",
        ["fn", "loop", "async", "self", "impl", "where"].iter().map(|name| field(name, "text")).collect(),
    );
    let many = (1..=5)
        .map(|n| {
            let name = format!("Thing{n}");
            let mut fields = vec![Field { required: true, ..field("label", "text") }];
            if n > 1 {
                fields.push(relation("previous", &format!("thing{}s", n - 1), "restrict", true));
            }
            model(&name, &format!("thing{n}"), &format!("thing{n}s"), fields)
        })
        // Declared dependents first: the schema puts what they refer to first.
        .rev()
        .collect();
    vec![
        ("every-type", vec![model("Sample", "sample", "samples", every_type)]),
        ("every-rule", vec![model("Product", "product", "products", rules)]),
        ("relations", vec![invoices, customers, categories]),
        ("keywords", vec![keywords]),
        ("no-fields", vec![model("Marker", "marker", "markers", Vec::new())]),
        (
            "one-enum",
            vec![model(
                "Flag",
                "flag",
                "flags",
                vec![Field { required: true, enum_values: vec!["on".into()], ..field("state", "enum") }],
            )],
        ),
        ("many-models", many),
        (
            "unmakeable",
            vec![model(
                "Code",
                "code",
                "codes",
                vec![Field { required: true, pattern: "^[A-Z]{2}[0-9]{4}$".into(), ..field("value", "text") }],
            )],
        ),
    ]
}

fn render_app(dir: &Path, slug: &str, models: &[Model]) {
    let _ = std::fs::remove_dir_all(dir);
    for (path, content) in render_files(slug, models, &uuid::Uuid::new_v4().to_string()) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// The set rendered for an application of `models`: (path, content) by path.
fn render_files(slug: &str, models: &[Model], application_id: &str) -> Vec<(PathBuf, String)> {
    let templates: Vec<templating::TemplateInput> = seeds::starter_templates()
        .unwrap()
        .iter()
        .filter(|t| t.set == "rust-axum")
        .map(|t| templating::TemplateInput {
            name: t.name.clone(),
            output_path: t.output_path.clone(),
            body: t.body.clone(),
            scope: t.scope.clone(),
        })
        .collect();
    let application = json!({
        "id": application_id,
        "name": format!("App \"{slug}\" \\ Ü"),
        "slug": slug,
        "description": "A corpus application",
        "model_ids": [],
        "template_set": "rust-axum",
        "config": { "build_args": {}, "port": 8080, "env": { "GREETING": "hello \"world\"" } },
        "components": [],
    });
    let inputs = json!({ "application": application, "models": serde_json::to_value(models).unwrap() });
    let context = templating::context(&inputs, "corpus", 1);
    let mut files: Vec<(PathBuf, String)> = templating::render_set(&templates, &context)
        .unwrap_or_else(|e| panic!("{slug}: {e}"))
        .into_iter()
        .map(|file| (file.path, file.content))
        .collect();
    files.sort();
    files
}

/// The sample application renders exactly as the files in `kiln/tests/golden/rust-axum`
/// (`KILN_UPDATE_GOLDEN=1` rewrites them after a deliberate change of the set).
#[test]
fn the_sample_application_renders_as_its_golden_files() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/rust-axum");
    let (slug, mut models) = corpus().into_iter().find(|(slug, _)| *slug == "relations").unwrap();
    for (n, model) in models.iter_mut().enumerate() {
        model.id = format!("00000000-0000-0000-0000-00000000000{n}");
    }
    let files = render_files(slug, &models, "00000000-0000-0000-0000-0000000000aa");
    if std::env::var_os("KILN_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        for (path, content) in &files {
            std::fs::create_dir_all(golden.join(path).parent().unwrap()).unwrap();
            std::fs::write(golden.join(path), content).unwrap();
        }
    }
    let mut expected = Vec::new();
    let mut stack = vec![golden.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("golden files (KILN_UPDATE_GOLDEN=1 writes them)") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let content = std::fs::read_to_string(&path).unwrap();
                expected.push((path.strip_prefix(&golden).unwrap().to_path_buf(), content));
            }
        }
    }
    expected.sort();
    let paths = |files: &[(PathBuf, String)]| files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&files), paths(&expected));
    for ((path, content), (_, wanted)) in files.iter().zip(&expected) {
        assert_eq!(content, wanted, "{} differs from its golden file", path.display());
    }
}

fn target_dir() -> PathBuf {
    // The workspace's target directory, so repeated runs reuse the compiled dependencies.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/generated-apps")
}

async fn cargo_test(dir: &Path, database: Option<&str>) -> (bool, String) {
    let mut command = tokio::process::Command::new(env!("CARGO"));
    command.arg("test").arg("--quiet").current_dir(dir).env("CARGO_TARGET_DIR", target_dir());
    command.env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS");
    if let Some(url) = database {
        command.env("TEST_DATABASE_URL", url);
    }
    let output = command.output().await.expect("cargo runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test]
async fn every_shape_generates_a_service_that_compiles_and_passes_its_tests() {
    let root = tempfile::tempdir().unwrap();
    let postgres = std::env::var("KILN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    for (slug, models) in corpus() {
        let dir = root.path().join(slug);
        render_app(&dir, slug, &models);
        assert!(
            dir.join("Dockerfile").exists()
                && dir.join("docker-compose.yml").exists()
                && dir.join(".dockerignore").exists()
        );
        let (passed, output) = cargo_test(&dir, None).await;
        assert!(passed, "{slug} on SQLite:\n{output}");
        assert!(!output.contains("warning"), "{slug} compiles with warnings:\n{output}");
        if slug == "relations" || slug == "every-rule" {
            let name = format!("kiln_generated_{}", uuid::Uuid::new_v4().simple());
            let server = sqlx::PgPool::connect(&postgres).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&server).await.unwrap();
            let url = postgres.rsplit_once('/').map(|(server, _)| format!("{server}/{name}")).unwrap();
            let (passed, output) = cargo_test(&dir, Some(&url)).await;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)")))
                .execute(&server)
                .await
                .unwrap();
            assert!(passed, "{slug} on PostgreSQL:\n{output}");
        }
    }
    // The OpenAPI document is the program's too.
    let dir = root.path().join("relations");
    let output = tokio::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--", "openapi"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .await
        .unwrap();
    let document: Value = serde_json::from_slice(&output.stdout).expect("an OpenAPI document");
    assert!(document["paths"]["/invoices/{id}"]["patch"].is_object(), "{document}");
    assert_eq!(document["components"]["schemas"]["invoicesInput"]["required"], json!(["number", "customer"]));
}
