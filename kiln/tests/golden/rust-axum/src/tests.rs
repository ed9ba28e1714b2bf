//! The service's own tests: every model's CRUD round trip through the HTTP API, its
//! rules refusing bad input with field errors, and the OpenAPI document. They run on a
//! fresh SQLite file, or on the database `TEST_DATABASE_URL` names.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::{
    TABLES,
    fields::{FieldSpec, Kind, Table},
    store,
};

async fn service() -> axum::Router {
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join(format!("{}-test-{}.db", env!("CARGO_PKG_NAME"), uuid::Uuid::new_v4()));
        format!("sqlite://{}?mode=rwc", path.display())
    });
    crate::app(store::connect(&url, TABLES).await.expect("the test database"))
}

async fn call(app: &axum::Router, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A value `field` accepts, different for each `n`; None when no value can be made up
/// (a pattern without a default).
fn sample_value(field: &FieldSpec, n: u32) -> Option<Value> {
    if let Some(default) = field.default {
        if !field.unique {
            return serde_json::from_str(default).ok();
        }
    }
    let bounded = |fallback: f64| {
        let low = field.min.map(f64::ceil).unwrap_or(fallback);
        let value = low + f64::from(n);
        match field.max {
            Some(max) if value > max => max.floor(),
            _ => value,
        }
    };
    let text = |base: String| {
        let mut text = base;
        while text.chars().count() < field.min_length.unwrap_or(0) {
            text.insert(0, 'x');
        }
        if let Some(max) = field.max_length {
            let skip = text.chars().count().saturating_sub(max);
            text = text.chars().skip(skip).collect();
        }
        text
    };
    let value = match field.kind {
        _ if field.pattern.is_some() => return None,
        Kind::Text | Kind::LongText => json!(text(format!("s{n}"))),
        Kind::Integer => json!(bounded(1.0) as i64),
        Kind::Decimal => json!(format!("{}", bounded(1.0))),
        Kind::Boolean => json!(true),
        Kind::Date => json!("2026-01-31"),
        Kind::DateTime => json!("2026-01-31T12:00:00Z"),
        Kind::Email => json!(text(format!("u{n}@example.com"))),
        Kind::Url => json!(text(format!("https://example.com/{n}"))),
        Kind::Enum => json!(field.enum_values.get(n as usize % field.enum_values.len().max(1)).copied().unwrap_or("")),
        Kind::Json => json!({ "n": n }),
        Kind::Uuid | Kind::Relation => json!(uuid::Uuid::new_v4().to_string()),
    };
    Some(value)
}

fn table_named(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}

/// A record `table` accepts, its relations pointing at records made for it; None when
/// one of its fields can take no made-up value.
fn sample<'a>(app: &'a axum::Router, table: &'static Table, n: u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Map<String, Value>>> + 'a>> {
    Box::pin(async move {
        let mut record = Map::new();
        for field in table.fields {
            let value = match (field.kind, field.target.and_then(table_of_other(table))) {
                // A relation to itself: a record's first has nothing to point at.
                (Kind::Relation, None) if field.target.and_then(table_named).is_some() => continue,
                (Kind::Relation, Some(target)) => {
                    if !field.required {
                        continue;
                    }
                    let related = sample(app, target, n + 1000).await?;
                    let (status, created) = call(app, Method::POST, &format!("/{}", target.name), Some(Value::Object(related))).await;
                    assert_eq!(status, StatusCode::CREATED, "{created}");
                    created["id"].clone()
                }
                _ => match sample_value(field, n) {
                    Some(value) => value,
                    None if field.required && field.default.is_none() => return None,
                    None => continue,
                },
            };
            if field.check(&value).is_err() {
                return if field.required { None } else { Some(record) };
            }
            record.insert(field.name.to_string(), value);
        }
        Some(record)
    })
}

/// Whether a record of `table` needs a value only its pattern knows: a required field
/// with a pattern and no default, its own or a required related record's.
fn needs_a_pattern(table: &'static Table) -> bool {
    table.fields.iter().filter(|f| f.required).any(|f| {
        (f.pattern.is_some() && f.default.is_none())
            || f.target.and_then(table_of_other(table)).is_some_and(needs_a_pattern)
    })
}

/// The related table of a relation, unless it is the table itself (left empty).
fn table_of_other(of: &'static Table) -> impl Fn(&'static str) -> Option<&'static Table> {
    move |name| table_named(name).filter(|t| t.name != of.name)
}

#[tokio::test]
async fn every_model_has_working_crud() {
    let app = service().await;
    let (mut round_trips, mut skipped) = (0, 0);
    for (n, table) in store::ordered(TABLES).into_iter().enumerate() {
        let path = format!("/{}", table.name);
        let Some(record) = sample(&app, table, n as u32).await else {
            // Only a value matching a pattern cannot be made up: the service's users give it.
            assert!(needs_a_pattern(table), "{}: no record could be made up", table.name);
            eprintln!("{}: no record can be made up (a required field must match a pattern)", table.name);
            skipped += 1;
            continue;
        };
        let (status, created) = call(&app, Method::POST, &path, Some(Value::Object(record.clone()))).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {created}", table.name);
        for (name, value) in &record {
            assert_eq!(&created[name], value, "{}.{name}", table.name);
        }
        let id = created["id"].as_str().unwrap().to_string();
        let item = format!("{path}/{id}");
        let (status, got) = call(&app, Method::GET, &item, None).await;
        assert_eq!((status, &got), (StatusCode::OK, &created));
        let (status, page) = call(&app, Method::GET, &format!("{path}?limit=100"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page["items"].as_array().unwrap().iter().any(|r| r["id"] == json!(id)), "{page}");
        let (status, replaced) = call(&app, Method::PUT, &item, Some(Value::Object(record.clone()))).await;
        assert_eq!(status, StatusCode::OK, "{replaced}");
        let (status, patched) = call(&app, Method::PATCH, &item, Some(json!({}))).await;
        assert_eq!((status, &patched["id"]), (StatusCode::OK, &json!(id)));
        let (status, _) = call(&app, Method::DELETE, &item, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, missing) = call(&app, Method::GET, &item, None).await;
        assert_eq!((status, &missing["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
        round_trips += 1;
    }
    assert_eq!(round_trips + skipped, TABLES.len(), "every model was tried");
}

#[tokio::test]
async fn bad_input_is_refused_with_field_errors() {
    let app = service().await;
    for table in TABLES {
        let path = format!("/{}", table.name);
        let (status, body) = call(&app, Method::POST, &path, Some(json!({ "no_such_field": 1 }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let fields: Vec<&str> = body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&"no_such_field"), "{body}");
        for field in table.fields.iter().filter(|f| f.required && f.default.is_none()) {
            assert!(fields.contains(&field.name), "{}.{} is required: {body}", table.name, field.name);
        }
        for field in table.fields {
            let wrong = match field.kind {
                Kind::Integer | Kind::Decimal | Kind::Boolean => json!("not a value of this type"),
                Kind::Json => continue,
                _ => json!(12),
            };
            let (status, body) = call(&app, Method::POST, &path, Some(json!({ field.name: wrong }))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body["error"]["details"].as_array().unwrap().iter().any(|d| d["field"] == json!(field.name)), "{body}");
        }
        let (status, body) = call(&app, Method::GET, &format!("{path}/{}", uuid::Uuid::new_v4()), None).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
        let (status, _) = call(&app, Method::GET, &format!("{path}?limit=0"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = call(&app, Method::POST, &path, Some(json!([1, 2]))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn the_openapi_document_names_every_model() {
    let app = service().await;
    let (status, document) = call(&app, Method::GET, "/openapi.json", None).await;
    assert_eq!((status, &document["openapi"]), (StatusCode::OK, &json!("3.1.0")));
    for table in TABLES {
        assert!(document["paths"][format!("/{}", table.name)].is_object(), "{}", table.name);
        assert!(document["paths"][format!("/{}/{{id}}", table.name)].is_object(), "{}", table.name);
    }
}
