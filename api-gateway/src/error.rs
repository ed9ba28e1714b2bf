//! The REST error body, always `{"error":{"code","message","details"}}`, with the HTTP
//! status of its [`ErrorCode`]; and [`ApiJson`], the JSON extractor whose rejections
//! (bad JSON, wrong content type, oversized body) answer in the same shape.

use axum::{
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kiln_common::{ErrorCode, error::field_violations};
use serde_json::json;
use tonic::Status;

/// An error as REST clients see it.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: serde_json::Value,
}

impl ApiError {
    /// An error without field details (`details` is then `[]`, never null).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: json!([]) }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(path: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("no route for {path}"))
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let code = ErrorCode::from_grpc(status.code());
        let violations = field_violations(&status);
        let details = violations.iter().map(|v| json!({ "field": v.field, "description": v.description })).collect();
        let message = match code {
            // Internal text never leaves the service; say only what is safe.
            ErrorCode::Internal => "internal error".to_string(),
            ErrorCode::Unavailable => "a service Kiln depends on is unavailable; try again shortly".to_string(),
            _ => status.message().to_string(),
        };
        if code == ErrorCode::Internal || code == ErrorCode::Unavailable {
            tracing::error!(grpc_code = ?status.code(), message = status.message(), "backend call failed");
        }
        ApiError { code, message, details }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "error": { "code": self.code.as_str(), "message": self.message, "details": self.details } });
        (status, axum::Json(body)).into_response()
    }
}

/// A JSON body's rejection, told as an [`ApiError`].
pub(crate) fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON: send `content-type: application/json`",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large"),
        _ => {
            let detail = rejection.body_text();
            // serde's message names the field and position, never server internals.
            let reason = detail.rsplit_once(": ").map(|(_, r)| r.to_string()).unwrap_or(detail);
            ApiError::new(ErrorCode::InvalidArgument, "the request body is not valid JSON for this call")
                .with_details(json!([{ "field": "body", "description": reason }]))
        }
    }
}

/// A 400 naming the part of a request that is wrong.
pub fn url_error(field: &str, description: impl Into<String>) -> ApiError {
    let description = description.into();
    ApiError::new(ErrorCode::InvalidArgument, format!("{field}: {description}"))
        .with_details(json!([{ "field": field, "description": description }]))
}
