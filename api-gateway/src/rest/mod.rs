//! REST routes under `/api/v1` (and `/api`). Each module exports its operation table
//! (what the OpenAPI document shows) and a router built from the same table.

pub mod auth;

use axum::http::HeaderMap;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::openapi::Operation;

/// Every REST operation, for the OpenAPI document.
pub fn operations() -> Vec<Operation> {
    auth::operations()
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
