//! End-to-end tests: the real `kiln` started on port 0 against a temp SQLite file or a
//! fresh PostgreSQL database, called over real HTTP/1.1, h2c gRPC and grpc-web.

mod archive;
mod auth;
mod backup;
mod builds;
mod docker;
mod edge;
mod entities;
mod events;
mod faults;
mod grpc;
mod harness;
mod mesh;
mod models;
mod prompts;
mod redelivery;
mod schema_changes;
mod sdk;
mod security;
mod sockets;
mod system_records;
mod tenancy;
mod traces;
mod typed;
mod ui;
mod webhooks;
mod workflows;
