//! The `kiln.v1` contract: every message, client and server generated from
//! `proto/kiln/v1/*.proto`, with serde impls that follow the proto3 JSON mapping
//! (field names as written in the proto, defaults emitted).

pub mod codec;
pub mod rules;

/// Package `kiln.v1`.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/kiln.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/kiln.v1.serde.rs"));
}

/// The encoded `FileDescriptorSet` of every kiln.v1 file and its imports, for gRPC
/// reflection and for describing messages (OpenAPI schemas).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kiln_descriptor.bin"));

/// Well-known types as the messages use them (`Struct`, `Value`, `Timestamp`, …).
pub use pbjson_types as wkt;
