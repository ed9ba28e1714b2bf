//! Error codes shared by every surface: one [`ErrorCode`] maps to a gRPC code and an HTTP
//! status, and [`ServiceError`] is what service code returns. Internal failures are
//! logged with their whole chain and reach clients as a generic message.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What went wrong, in the words every surface shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
    ResourceExhausted,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
    Cancelled,
    Internal,
    // HTTP-only conditions the REST edge meets before any service is called.
    MethodNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge,
}

impl ErrorCode {
    /// The `code` string of REST error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::Aborted => "aborted",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unimplemented => "unimplemented",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition | ErrorCode::Aborted => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::ResourceExhausted => 429,
            ErrorCode::Cancelled => 499,
            ErrorCode::Internal => 500,
            ErrorCode::Unimplemented => 501,
            ErrorCode::Unavailable => 503,
            ErrorCode::DeadlineExceeded => 504,
        }
    }

    pub fn grpc_code(self) -> Code {
        match self {
            ErrorCode::InvalidArgument | ErrorCode::PayloadTooLarge | ErrorCode::UnsupportedMediaType => {
                Code::InvalidArgument
            }
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::Aborted => Code::Aborted,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::Unimplemented | ErrorCode::MethodNotAllowed => Code::Unimplemented,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorCode::Cancelled => Code::Cancelled,
            ErrorCode::Internal => Code::Internal,
        }
    }

    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::PermissionDenied => ErrorCode::PermissionDenied,
            Code::NotFound => ErrorCode::NotFound,
            Code::AlreadyExists => ErrorCode::AlreadyExists,
            Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            Code::Aborted => ErrorCode::Aborted,
            Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            Code::Unimplemented => ErrorCode::Unimplemented,
            Code::Unavailable => ErrorCode::Unavailable,
            Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Code::Cancelled => ErrorCode::Cancelled,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorCode::Internal,
        }
    }
}

/// One field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// What service code returns; it becomes a `tonic::Status` at the service boundary.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong; `violations` says which fields and why.
    #[error("{message}")]
    InvalidArgument { message: String, violations: Vec<FieldViolation> },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    /// Something with the same identity exists; `field` names what clashes, if a field does.
    #[error("{message}")]
    AlreadyExists { message: String, field: Option<String> },
    #[error("{0}")]
    FailedPrecondition(String),
    /// A change that would destroy data and was not confirmed; `losses` names what.
    #[error("{message}")]
    WouldLoseData { message: String, losses: Vec<FieldViolation> },
    /// A change made on a version that is no longer current: `subject` names what the
    /// caller based it on, `current` says what is current now.
    #[error("{message}")]
    Stale { message: String, subject: String, current: String },
    #[error("{0}")]
    ResourceExhausted(String),
    /// The call was cut short and may be made again (a watcher that fell behind).
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Unavailable(String),
    /// The work took longer than it may (a statement timeout).
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Anything the client did not cause. Logged in full, answered generically.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// What clients are told while the database cannot be reached.
const DATABASE_UNAVAILABLE: &str = "the database is unavailable; try again shortly";

/// Whether a database error means "cannot reach the database now", not "this failed".
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P01-03: shutting down or starting up;
        // 53300: too many connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// What a statement timeout raises: PostgreSQL's 57014 (query_canceled), SQLite's
/// SQLITE_INTERRUPT from the readers' progress handler.
fn is_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("57014" | crate::db::SQLITE_INTERRUPT)))
}

impl From<anyhow::Error> for ServiceError {
    /// An unreachable database stays UNAVAILABLE, and a statement timeout DEADLINE_EXCEEDED,
    /// however deep in the chain they were met.
    fn from(e: anyhow::Error) -> Self {
        let database = || e.chain().filter_map(|cause| cause.downcast_ref::<sqlx::Error>());
        if database().any(is_unavailable) {
            tracing::warn!(error = format!("{e:#}"), "database unavailable");
            return ServiceError::Unavailable(DATABASE_UNAVAILABLE.into());
        }
        if database().any(is_timeout) {
            tracing::warn!(error = format!("{e:#}"), "statement timed out");
            return ServiceError::DeadlineExceeded(
                "the query took longer than allowed; narrow it with filters, or sort by created_at or a unique field"
                    .into(),
            );
        }
        ServiceError::Internal(e)
    }
}

impl ServiceError {
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let message = match violations.as_slice() {
            [one] => format!("{}: {}", one.field, one.description),
            _ => format!("{} fields are invalid", violations.len()),
        };
        ServiceError::InvalidArgument { message, violations }
    }

    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        anyhow::Error::new(e).context("database").into()
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::InvalidArgument { message, violations } => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ServiceError::AlreadyExists { message, field } => match field {
                Some(field) => {
                    let details = ErrorDetails::with_bad_request_violation(field, "already taken");
                    Status::with_error_details(Code::AlreadyExists, message, details)
                }
                None => Status::already_exists(message),
            },
            ServiceError::Unauthenticated(m) => Status::unauthenticated(m),
            ServiceError::PermissionDenied(m) => Status::permission_denied(m),
            ServiceError::NotFound(m) => Status::not_found(m),
            ServiceError::FailedPrecondition(m) => Status::failed_precondition(m),
            ServiceError::WouldLoseData { message, losses } => {
                let mut details = ErrorDetails::new();
                for loss in losses {
                    details.add_precondition_failure_violation("DATA_LOSS", loss.field, loss.description);
                }
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            ServiceError::Stale { message, subject, current } => {
                let mut details = ErrorDetails::new();
                details.add_precondition_failure_violation("STALE", subject, current);
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            ServiceError::ResourceExhausted(m) => Status::resource_exhausted(m),
            ServiceError::Aborted(m) => Status::aborted(m),
            ServiceError::Unavailable(m) => Status::unavailable(m),
            ServiceError::DeadlineExceeded(m) => Status::deadline_exceeded(m),
            ServiceError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// The field-level details a status carries, if any: bad-request violations, or the
/// subjects of failed preconditions (what a change would lose).
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    let details = status.get_error_details();
    let bad = details.bad_request().into_iter().flat_map(|bad| {
        bad.field_violations.iter().map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
    });
    let failed = details.precondition_failure().into_iter().flat_map(|failure| {
        failure.violations.iter().map(|v| FieldViolation::new(v.subject.clone(), v.description.clone()))
    });
    bad.chain(failed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_maps_to_the_documented_status() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::FailedPrecondition, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
        ];
        for (code, status) in cases {
            assert_eq!(ErrorCode::from_grpc(code).http_status(), status, "{code:?}");
            assert_eq!(ErrorCode::from_grpc(code).grpc_code(), code);
        }
    }

    #[test]
    fn field_violations_survive_the_status() {
        let status: Status = ServiceError::invalid(vec![
            FieldViolation::new("email", "is not an email address"),
            FieldViolation::new("password", "must be at least 10 characters"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "2 fields are invalid");
        let violations = field_violations(&status);
        assert_eq!(violations.len(), 2);
        assert_eq!(violations[0].field, "email");
    }

    #[test]
    fn an_unreachable_database_is_unavailable_not_internal() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::Io(refused)] {
            let status: Status = ServiceError::from(e).into();
            assert_eq!(status.code(), Code::Unavailable);
            assert_eq!(status.message(), DATABASE_UNAVAILABLE);
        }
        let wrapped = anyhow::Error::new(sqlx::Error::PoolClosed).context("opening workspace database");
        assert!(matches!(ServiceError::from(wrapped), ServiceError::Unavailable(_)));
        let status: Status = ServiceError::from(sqlx::Error::RowNotFound).into();
        assert_eq!(status.code(), Code::Internal);
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let status: Status = ServiceError::Internal(anyhow::anyhow!("relation \"users\" does not exist")).into();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
