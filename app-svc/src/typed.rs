//! The typed services' way to app-svc's records: one kind's records as JSON objects,
//! through the same record engine (and so the same rules, checks and workspace scoping)
//! that serves them over EntityService and the generic `/api/v1/{plural}` routes.
//! Also how a call made for a user goes on to another service with the user's token.

use kiln_common::{
    Principal, ServiceError,
    paging::MAX_PAGE_SIZE,
    records::{engine::Records, feed::ChangeKind},
};
use kiln_proto::{
    v1::{CreateEntityRequest, DeleteEntityRequest, GetEntityRequest, ListEntitiesRequest, UpdateEntityRequest},
    wkt::{Struct, Timestamp},
};
use serde_json::{Map, Value};
use tonic::metadata::MetadataMap;

use crate::records::PlatformKinds;

/// A record as JSON: its fields plus `id`, `created_at`, `updated_at`, `created_by`.
pub type Record = Map<String, Value>;

/// One page of records and the token of the next.
pub type Page = (Vec<Record>, String);

#[derive(Debug, Clone)]
pub struct KindRecords {
    records: Records<PlatformKinds>,
}

fn to_struct(record: Record) -> Struct {
    // A JSON object is always a Struct.
    serde_json::from_value(Value::Object(record)).unwrap_or_default()
}

fn to_record(record: Option<Struct>) -> Record {
    match record.map(serde_json::to_value) {
        Some(Ok(Value::Object(fields))) => fields,
        _ => Map::new(),
    }
}

impl KindRecords {
    pub fn new(records: Records<PlatformKinds>) -> Self {
        KindRecords { records }
    }

    pub async fn create(&self, caller: Principal, kind: &str, record: Record) -> Result<Record, ServiceError> {
        let request = CreateEntityRequest { model: kind.into(), record: Some(to_struct(record)) };
        Ok(to_record(self.records.create(caller, request).await?.record))
    }

    pub async fn get(&self, caller: Principal, kind: &str, id: &str) -> Result<Record, ServiceError> {
        let request = GetEntityRequest { model: kind.into(), id: id.into() };
        Ok(to_record(self.records.get(caller, request).await?.record))
    }

    /// Replaces the record (absent fields take their defaults), or with `partial`
    /// changes only the fields given.
    pub async fn update(
        &self,
        caller: Principal,
        kind: &str,
        id: &str,
        record: Record,
        partial: bool,
    ) -> Result<Record, ServiceError> {
        let request =
            UpdateEntityRequest { model: kind.into(), id: id.into(), record: Some(to_struct(record)), partial };
        Ok(to_record(self.records.update(caller, request).await?.record))
    }

    pub async fn delete(&self, caller: Principal, kind: &str, id: &str) -> Result<(), ServiceError> {
        self.records.delete(caller, DeleteEntityRequest { model: kind.into(), id: id.into() }).await?;
        Ok(())
    }

    /// Tells watchers and the event bus about a change to a record of `kind` that its
    /// own service made in a transaction of its own.
    pub async fn announce(
        &self,
        caller: Principal,
        kind: &str,
        change: ChangeKind,
        before: Option<Record>,
        after: Option<Record>,
    ) {
        let id = after.as_ref().or(before.as_ref()).map(|record| text(record, "id")).unwrap_or_default();
        let (before, after) = (before.map(to_struct), after.map(to_struct));
        self.records.announce(caller, kind, &id, change, before.as_ref(), after.as_ref()).await;
    }

    /// A page, `sort` as EntityService takes it, `filter` by equality.
    pub async fn list(
        &self,
        caller: Principal,
        kind: &str,
        page: (i32, &str),
        sort: &str,
        filter: &[(&str, &str)],
    ) -> Result<Page, ServiceError> {
        let request = ListEntitiesRequest {
            model: kind.into(),
            page_size: page.0,
            page_token: page.1.into(),
            sort: sort.into(),
            filter: filter.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let response = self.records.list(caller, request).await?;
        Ok((response.records.into_iter().map(|r| to_record(Some(r))).collect(), response.next_page_token))
    }

    /// Every record that matches, oldest first, up to `limit`.
    pub async fn all(
        &self,
        caller: Principal,
        kind: &str,
        filter: &[(&str, &str)],
        limit: usize,
    ) -> Result<Vec<Record>, ServiceError> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = self.list(caller, kind, (MAX_PAGE_SIZE as i32, &token), "created_at", filter).await?;
            all.extend(page);
            if next.is_empty() || all.len() >= limit {
                all.truncate(limit);
                return Ok(all);
            }
            token = next;
        }
    }
}

/// A text field of a record, "" when absent.
pub fn text(record: &Record, field: &str) -> String {
    record.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// A time field of a record (RFC 3339) as the messages carry it.
pub fn time(record: &Record, field: &str) -> Option<Timestamp> {
    serde_json::from_value(record.get(field)?.clone()).ok()
}

/// `message` as a request to another service for the caller who sent `metadata`: their
/// token goes with it.
pub fn on_behalf<T>(metadata: &MetadataMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = metadata.get("authorization") {
        request.metadata_mut().insert("authorization", token.clone());
    }
    request
}
