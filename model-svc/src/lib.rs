//! model-svc: the workspace's models and, as the schema engine lands, their tables and
//! records. [`routes`] is the whole gRPC surface of the role.

pub mod models;
pub mod names;
pub mod schema;
pub mod workspace;

use kiln_common::{Authenticator, Db};
use kiln_proto::v1::model_service_server::ModelServiceServer;
use tonic::{server::NamedService, service::Routes};

/// The gRPC services this role serves, by full name.
pub const SERVICES: &[&str] = &[<ModelServiceServer<models::ModelApi> as NamedService>::NAME];

/// What the role's services need.
#[derive(Debug, Clone)]
pub struct ModelDeps {
    pub db: Db,
    pub auth: Authenticator,
}

/// Every service of the role.
pub fn routes(deps: ModelDeps) -> Routes {
    Routes::new(ModelServiceServer::new(models::ModelApi::new(deps)))
}
