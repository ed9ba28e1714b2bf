//! `/{model}` and `/{model}/{id}`: CRUD over any model's records, through EntityService.
//! Static routes (`/models`, `/auth`, …) win over these, and no model may take their names.

use axum::{
    Json,
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use kiln_common::limits::MAX_SAFE_INTEGER;
use kiln_proto::{
    v1::{
        CreateEntityRequest, CreateEntityResponse, DeleteEntityRequest, DeleteEntityResponse, GetEntityRequest,
        GetEntityResponse, ImportEntitiesRequest, ImportEntitiesResponse, ListEntitiesRequest, ListEntitiesResponse,
        UpdateEntityRequest, UpdateEntityResponse,
    },
    wkt::{Struct, Value as WktValue, value::Kind},
};
use serde_json::json;

use super::{Body, Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<ListEntitiesRequest, ListEntitiesResponse>(
            Method::GET,
            "/{model}",
            "kiln.v1.EntityService/ListEntities",
            StatusCode::OK,
            "Records of a model: page_size, page_token, sort (field, `-field` for descending), and any field=value as an equality filter",
        )
        .operation_id("listRecords")
        .answer(record_page)
        .into(),
        route::<CreateEntityRequest, CreateEntityResponse>(
            Method::POST,
            "/{model}",
            "kiln.v1.EntityService/CreateEntity",
            StatusCode::CREATED,
            "Create a record (the body is the record)",
        )
        .operation_id("createRecord")
        .body(Body::Field("record"))
        .answer(|r, status| one_record(r.record, status))
        .into(),
        route::<GetEntityRequest, GetEntityResponse>(
            Method::GET,
            "/{model}/{id}",
            "kiln.v1.EntityService/GetEntity",
            StatusCode::OK,
            "One record",
        )
        .operation_id("getRecord")
        .answer(|r, status| one_record(r.record, status))
        .into(),
        route::<UpdateEntityRequest, UpdateEntityResponse>(
            Method::PUT,
            "/{model}/{id}",
            "kiln.v1.EntityService/UpdateEntity",
            StatusCode::OK,
            "Replace a record: absent fields take their default",
        )
        .operation_id("replaceRecord")
        .body(Body::Field("record"))
        .fixed("partial", json!(false))
        .answer(|r, status| one_record(r.record, status))
        .into(),
        route::<UpdateEntityRequest, UpdateEntityResponse>(
            Method::PATCH,
            "/{model}/{id}",
            "kiln.v1.EntityService/UpdateEntity",
            StatusCode::OK,
            "Change only the fields given",
        )
        .operation_id("patchRecord")
        .body(Body::Field("record"))
        .fixed("partial", json!(true))
        .answer(|r, status| one_record(r.record, status))
        .into(),
        route::<DeleteEntityRequest, DeleteEntityResponse>(
            Method::DELETE,
            "/{model}/{id}",
            "kiln.v1.EntityService/DeleteEntity",
            StatusCode::NO_CONTENT,
            "Delete a record",
        )
        .operation_id("deleteRecord")
        .into(),
        route::<ImportEntitiesRequest, ImportEntitiesResponse>(
            Method::POST,
            "/{model}/import",
            "kiln.v1.EntityService/ImportEntities",
            StatusCode::OK,
            "Import records (`records`, or CSV text in `csv`), keeping the ids and times they give; every row is \
             checked first, and `dry_run` lists the row errors by line without writing",
        )
        .operation_id("importRecords")
        .body(Body::Message)
        .into(),
    ]
}

/// A record as REST shows it, written straight from the `Struct` it travels in, keys in
/// order. `Struct` numbers are doubles; whole ones within ±2^53 are written as integers
/// (`8080`, not `8080.0`), as the proto3 JSON mapping writes them. Integers past that
/// and decimals arrive as strings already (the record codec, model-svc `records`).
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
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER as f64 => {
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

fn one_record(record: Option<Struct>, status: StatusCode) -> Response {
    (status, Json(OneRecord { record: record.as_ref().map(Shown) })).into_response()
}

fn record_page(page: ListEntitiesResponse, status: StatusCode) -> Response {
    let shown =
        RecordPage { records: page.records.iter().map(Shown).collect(), next_page_token: &page.next_page_token };
    (status, Json(shown)).into_response()
}
