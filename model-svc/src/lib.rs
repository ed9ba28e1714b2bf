//! model-svc: the workspace's models and, as the schema engine lands, their tables and
//! records. [`routes`] is the whole gRPC surface of the role.

pub mod catalog;
pub mod changes;
pub mod entities;
pub mod models;
pub mod names;
pub mod records;
pub mod schema;
pub mod schema_writer;
pub mod workspace;

use kiln_common::{Authenticator, Db};
use kiln_proto::v1::{entity_service_server::EntityServiceServer, model_service_server::ModelServiceServer};
use tonic::{server::NamedService, service::Routes};

/// The gRPC services this role serves, by full name.
pub const SERVICES: &[&str] = &[
    <ModelServiceServer<models::ModelApi> as NamedService>::NAME,
    <EntityServiceServer<entities::EntityApi> as NamedService>::NAME,
];

/// What the role's services need.
#[derive(Debug, Clone)]
pub struct ModelDeps {
    pub db: Db,
    pub auth: Authenticator,
    /// Largest request message accepted, as large as the largest REST body.
    pub max_message_bytes: usize,
}

/// Every service of the role.
pub fn routes(deps: ModelDeps) -> Routes {
    // One set of workspace pools for both services.
    let workspaces = workspace::Workspaces::new(deps.db.clone());
    let catalog = catalog::Catalog::new(workspaces.clone());
    let limit = deps.max_message_bytes;
    Routes::new(
        ModelServiceServer::new(models::ModelApi::new(deps.clone(), workspaces.clone(), catalog.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        EntityServiceServer::new(entities::EntityApi::new(deps, workspaces, catalog)).max_decoding_message_size(limit),
    )
}
