//! What every Kiln role shares: typed configuration, logging, the database and its
//! dialects, access tokens, error codes, and the channels services talk through.

pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod grpc;
pub mod limits;
pub mod net;
pub mod paging;
pub mod queue;
pub mod records;
pub mod seeds;
pub mod sessions;
pub mod telemetry;
pub mod templating;
pub mod token;

pub use config::Config;
pub use db::Db;
pub use error::{ErrorCode, ServiceError};
pub use grpc::GrpcChannel;
pub use token::{Authenticator, Principal, TokenKeys};

/// A time as the messages carry it.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> kiln_proto::wkt::Timestamp {
    kiln_proto::wkt::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}
