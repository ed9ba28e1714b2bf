//! `/{plural}` and `/{plural}/{id}`: CRUD over any model's records through EntityService.
//! Static routes (`/models`, `/auth`, …) win over these, and no model may take their names.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use kiln_common::{
    ErrorCode, GrpcChannel,
    limits::{MAX_JSON_DEPTH, json_depth, too_deep},
};
use kiln_proto::{
    v1::{
        CreateEntityRequest, DeleteEntityRequest, GetEntityRequest, ListEntitiesRequest, UpdateEntityRequest,
        entity_service_client::EntityServiceClient,
    },
    wkt::{Struct, Value as WktValue, value::Kind},
};
use serde_json::{Map, Value, json};

use super::{grpc_request, list_params};
use crate::{
    GatewayState,
    error::{ApiError, ApiJson, ApiPath, ApiQuery},
    openapi::Operation,
};

const TAG: &str = "records";

pub fn operations() -> Vec<Operation> {
    let op = |method, path, operation_id, summary, request, response, success| Operation {
        method,
        path,
        operation_id,
        summary,
        tag: TAG,
        request,
        response,
        success,
        secured: true,
    };
    vec![
        op(
            Method::GET,
            "/{plural}",
            "listRecords",
            "Records of a model: page_size, page_token, sort (field, `-field` for descending), and any field=value as an equality filter",
            None,
            Some("kiln.v1.ListEntitiesResponse"),
            200,
        ),
        op(
            Method::POST,
            "/{plural}",
            "createRecord",
            "Create a record (the body is the record)",
            Some("google.protobuf.Struct"),
            Some("kiln.v1.CreateEntityResponse"),
            201,
        ),
        op(Method::GET, "/{plural}/{id}", "getRecord", "One record", None, Some("kiln.v1.GetEntityResponse"), 200),
        op(
            Method::PUT,
            "/{plural}/{id}",
            "replaceRecord",
            "Replace a record: absent fields take their default",
            Some("google.protobuf.Struct"),
            Some("kiln.v1.UpdateEntityResponse"),
            200,
        ),
        op(
            Method::PATCH,
            "/{plural}/{id}",
            "patchRecord",
            "Change only the fields given",
            Some("google.protobuf.Struct"),
            Some("kiln.v1.UpdateEntityResponse"),
            200,
        ),
        op(Method::DELETE, "/{plural}/{id}", "deleteRecord", "Delete a record", None, None, 204),
    ]
}

pub fn router() -> Router<GatewayState> {
    Router::new()
        .route("/{plural}", get(list).post(create))
        .route("/{plural}/{id}", get(get_one).put(replace).patch(patch).delete(delete))
}

fn client(state: &GatewayState) -> EntityServiceClient<GrpcChannel> {
    EntityServiceClient::new(state.backends.model.clone())
}

/// A record as REST shows it, written straight from the `Struct` it travels in, keys in
/// order. `Struct` numbers are doubles; whole ones are written as integers (`8080`, not
/// `8080.0`) so integer fields read as they were written.
struct Shown<'a>(&'a Struct);

struct ShownValue<'a>(&'a WktValue);

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut fields: Vec<(&String, &WktValue)> = self.0.fields.iter().collect();
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (name, value) in fields {
            map.serialize_entry(name, &ShownValue(value))?;
        }
        map.end()
    }
}

impl serde::Serialize for ShownValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0.kind {
            None | Some(Kind::NullValue(_)) => serializer.serialize_unit(),
            Some(Kind::BoolValue(b)) => serializer.serialize_bool(*b),
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 => {
                serializer.serialize_i64(*n as i64)
            }
            Some(Kind::NumberValue(n)) => serializer.serialize_f64(*n),
            Some(Kind::StringValue(s)) => serializer.serialize_str(s),
            Some(Kind::StructValue(fields)) => Shown(fields).serialize(serializer),
            Some(Kind::ListValue(list)) => serializer.collect_seq(list.values.iter().map(ShownValue)),
        }
    }
}

/// `{"record": …}`, the answer of a call on one record.
#[derive(serde::Serialize)]
struct OneRecord<'a> {
    record: Option<Shown<'a>>,
}

/// `{"records": […], "next_page_token": …}`.
#[derive(serde::Serialize)]
struct RecordPage<'a> {
    records: Vec<Shown<'a>>,
    next_page_token: &'a str,
}

fn one_record(record: &Option<Struct>) -> Json<OneRecord<'_>> {
    Json(OneRecord { record: record.as_ref().map(Shown) })
}

/// A record as a client sent it, as the `Struct` it travels in: a field nested past
/// [`MAX_JSON_DEPTH`] is refused here, naming the field, before it reaches a decoder.
fn record_struct(record: Map<String, Value>) -> Result<Struct, ApiError> {
    let violations: Vec<Value> = record
        .iter()
        .filter(|(_, value)| json_depth(value) > MAX_JSON_DEPTH)
        .map(|(field, _)| json!({ "field": field, "description": too_deep() }))
        .collect();
    if !violations.is_empty() {
        let message = format!("{}: {}", violations[0]["field"].as_str().unwrap_or("record"), too_deep());
        return Err(ApiError::new(ErrorCode::InvalidArgument, message).with_details(Value::Array(violations)));
    }
    serde_json::from_value(Value::Object(record)).map_err(|e| {
        ApiError::new(ErrorCode::InvalidArgument, "the request body is not a record")
            .with_details(json!([{ "field": "body", "description": e.to_string() }]))
    })
}

async fn list(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath(model): ApiPath<String>,
    ApiQuery(mut query): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page_size, page_token) = list_params(&query)?;
    let sort = query.remove("sort").unwrap_or_default();
    query.remove("page_size");
    query.remove("page_token");
    let request = ListEntitiesRequest { model, page_size, page_token, sort, filter: query };
    let response = client(&state).list_entities(grpc_request(&headers, request)).await?.into_inner();
    let page = RecordPage {
        records: response.records.iter().map(Shown).collect(),
        next_page_token: &response.next_page_token,
    };
    Ok(Json(page).into_response())
}

async fn create(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath(model): ApiPath<String>,
    ApiJson(record): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let request = CreateEntityRequest { model, record: Some(record_struct(record)?) };
    let response = client(&state).create_entity(grpc_request(&headers, request)).await?.into_inner();
    Ok((StatusCode::CREATED, one_record(&response.record)).into_response())
}

async fn get_one(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath((model, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let response =
        client(&state).get_entity(grpc_request(&headers, GetEntityRequest { model, id })).await?.into_inner();
    Ok(one_record(&response.record).into_response())
}

async fn update(
    state: GatewayState,
    headers: HeaderMap,
    (model, id): (String, String),
    record: Struct,
    partial: bool,
) -> Result<Response, ApiError> {
    let request = UpdateEntityRequest { model, id, record: Some(record), partial };
    let response = client(&state).update_entity(grpc_request(&headers, request)).await?.into_inner();
    Ok(one_record(&response.record).into_response())
}

async fn replace(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath((model, id)): ApiPath<(String, String)>,
    ApiJson(record): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    update(state, headers, (model, id), record_struct(record)?, false).await
}

async fn patch(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath((model, id)): ApiPath<(String, String)>,
    ApiJson(record): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    update(state, headers, (model, id), record_struct(record)?, true).await
}

async fn delete(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath((model, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    client(&state).delete_entity(grpc_request(&headers, DeleteEntityRequest { model, id })).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
