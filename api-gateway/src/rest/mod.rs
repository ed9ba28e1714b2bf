//! REST routes under `/api/v1` (and `/api`). Each module exports its operation table
//! (what the OpenAPI document shows) and a router built from the same table.

pub mod auth;
pub mod entities;
pub mod models;

use std::collections::HashMap;

use axum::http::HeaderMap;
use tonic::metadata::{MetadataMap, MetadataValue};

pub use crate::error::url_error;
use crate::openapi::Operation;

/// Every REST operation, for the OpenAPI document.
pub fn operations() -> Vec<Operation> {
    [auth::operations(), models::operations(), entities::operations()].concat()
}

/// `page_size` and `page_token` from a list call's query string.
pub fn list_params(query: &HashMap<String, String>) -> Result<(i32, String), crate::ApiError> {
    let page_size = match query.get("page_size") {
        None => 0,
        Some(raw) => raw.parse::<i32>().map_err(|_| url_error("page_size", "must be a whole number"))?,
    };
    Ok((page_size, query.get("page_token").cloned().unwrap_or_default()))
}

/// A gRPC request carrying the caller's credentials and request id.
pub fn grpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    copy_metadata(headers, request.metadata_mut());
    request
}

fn copy_metadata(headers: &HeaderMap, metadata: &mut MetadataMap) {
    for name in ["authorization", "x-request-id"] {
        if let Some(value) = headers.get(name).and_then(|v| MetadataValue::try_from(v.as_bytes()).ok()) {
            metadata.insert(name, value);
        }
    }
}
