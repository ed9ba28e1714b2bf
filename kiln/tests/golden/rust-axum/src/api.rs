//! The REST API of every model, from its declaration: `GET`/`POST /<plural>`,
//! `GET`/`PUT`/`PATCH`/`DELETE /<plural>/{id}`. Errors are
//! `{"error":{"code","message","details":[{"field","description"}]}}`.

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    AppState,
    fields::{FieldError, Kind, Stored, Table, Write},
    store,
};

/// Records in a page when the request names no limit, and the most a page holds.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 100;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Vec::new() }
    }

    fn invalid(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.description),
            _ => format!("{} fields are invalid", details.len()),
        };
        ApiError { status: StatusCode::BAD_REQUEST, code: "invalid_argument", message, details }
    }

    fn not_found(table: &Table, id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {} {id}", table.label))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "details": self.details } });
        (self.status, Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", "a record with these values exists")
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                ApiError::new(StatusCode::CONFLICT, "failed_precondition", "other records refer to this one")
            }
            _ => {
                eprintln!("database error: {error}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database failed; try again")
            }
        }
    }
}

fn body(payload: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    match payload {
        Ok(Json(Value::Object(fields))) => Ok(fields),
        Ok(_) => Err(ApiError::invalid(vec![FieldError::new("body", "must be a JSON object")])),
        Err(rejection) => Err(ApiError::invalid(vec![FieldError::new("body", rejection.body_text())])),
    }
}

#[derive(Debug, Deserialize)]
pub struct Paging {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The routes of one model.
pub fn routes(table: &'static Table) -> Router<AppState> {
    let collection = format!("/{}", table.name);
    let item = format!("/{}/{{id}}", table.name);
    Router::new()
        .route(
            &collection,
            get(move |state, query| list(table, state, query)).post(move |state, payload| create(table, state, payload)),
        )
        .route(
            &item,
            get(move |state, id| read(table, state, id))
                .put(move |state, id, payload| change(table, state, id, payload, Write::Whole))
                .patch(move |state, id, payload| change(table, state, id, payload, Write::Partial))
                .delete(move |state, id| remove(table, state, id)),
        )
}

async fn list(table: &'static Table, State(state): State<AppState>, Query(paging): Query<Paging>) -> Result<Json<Value>, ApiError> {
    let limit = paging.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(vec![FieldError::new("limit", format!("must be between 1 and {MAX_LIMIT}"))]));
    }
    let offset = paging.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid(vec![FieldError::new("offset", "must be 0 or more")]));
    }
    let mut items = store::list(&state.pool, table, limit + 1, offset).await?;
    let next_offset = (items.len() as i64 > limit).then(|| offset + limit);
    items.truncate(limit as usize);
    Ok(Json(json!({ "items": items, "next_offset": next_offset })))
}

async fn read(table: &'static Table, State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    match store::get(&state.pool, table, &id).await? {
        Some(record) => Ok(Json(Value::Object(record))),
        None => Err(ApiError::not_found(table, &id)),
    }
}

/// Rules the database checks too, checked first so the answer names the field.
async fn check_references(
    state: &AppState,
    table: &'static Table,
    values: &[(&'static crate::fields::FieldSpec, Stored)],
    except: Option<&str>,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    for (field, stored) in values {
        if matches!(stored, Stored::Text(None) | Stored::Integer(None)) {
            continue;
        }
        if field.unique && store::taken(&state.pool, table, field, stored, except).await? {
            return Err(ApiError {
                details: vec![FieldError::new(field.name, "is taken by another record")],
                ..ApiError::new(StatusCode::CONFLICT, "already_exists", format!("{}: is taken by another record", field.name))
            });
        }
        if let (Kind::Relation, Some(target), Stored::Text(Some(id))) = (field.kind, field.target, stored) {
            let known = state.tables.iter().any(|t| t.name == target);
            if known && !store::exists(&state.pool, target, id).await? {
                errors.push(FieldError::new(field.name, format!("no {target} record {id}")));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::invalid(errors)) }
}

async fn create(
    table: &'static Table,
    State(state): State<AppState>,
    payload: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let values = table.check(&body(payload)?, Write::Whole).map_err(ApiError::invalid)?;
    check_references(&state, table, &values, None).await?;
    let id = store::insert(&state.pool, table, &values).await?;
    let record = store::get(&state.pool, table, &id).await?.ok_or_else(|| ApiError::not_found(table, &id))?;
    Ok((StatusCode::CREATED, Json(Value::Object(record))))
}

async fn change(
    table: &'static Table,
    State(state): State<AppState>,
    Path(id): Path<String>,
    payload: Result<Json<Value>, JsonRejection>,
    write: Write,
) -> Result<Json<Value>, ApiError> {
    let values = table.check(&body(payload)?, write).map_err(ApiError::invalid)?;
    if store::get(&state.pool, table, &id).await?.is_none() {
        return Err(ApiError::not_found(table, &id));
    }
    check_references(&state, table, &values, Some(&id)).await?;
    if !values.is_empty() {
        store::update(&state.pool, table, &id, &values).await?;
    }
    let record = store::get(&state.pool, table, &id).await?.ok_or_else(|| ApiError::not_found(table, &id))?;
    Ok(Json(Value::Object(record)))
}

async fn remove(table: &'static Table, State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if store::delete(&state.pool, table, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(table, &id))
    }
}
