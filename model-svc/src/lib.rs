//! model-svc: the workspace's models and, as the schema engine lands, their tables and
//! records. [`routes`] is the whole gRPC surface of the role.

pub mod catalog;
pub mod changes;
pub mod contract;
pub mod entities;
pub mod metadata;
pub mod models;
pub mod schema;
pub mod schema_writer;
pub mod seeding;
pub mod typed;
pub mod workspace;

use kiln_common::{
    Authenticator, Db, GrpcChannel,
    records::{engine::Records, feed::ChangeFeed},
};
use kiln_proto::v1::{entity_service_server::EntityServiceServer, model_service_server::ModelServiceServer};
use tonic::{server::NamedService, service::Routes};

/// The tables model-svc owns (models and their versions), applied by the process that
/// runs model-svc; each workspace's record tables are made by its models.
pub static MIGRATIONS: kiln_common::db::Migrations =
    kiln_common::migrations!("model": 1 "0001_models", 2 "0002_reserved_fields", 3 "0003_outbox");

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
    /// app-svc, which serves the records of the system kinds it owns.
    pub app: GrpcChannel,
    /// Cancelled when the process stops: calls that never end by themselves (Watch) end.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Where the events of committed changes go (its relay runs beside the role).
    pub outbox: kiln_common::events::outbox::Outbox,
}

/// Every service of the role: ModelService, EntityService, and every workspace's typed
/// services (`kiln.ws.<workspace_slug>.v1.*`), which no fixed name covers: they answer
/// whatever path no other service has.
pub fn routes(deps: ModelDeps) -> anyhow::Result<Routes> {
    // One set of workspace pools for both services.
    let workspaces = workspace::Workspaces::new(deps.db.clone());
    let catalog = catalog::Catalog::new(workspaces.clone());
    let callers = Callers { auth: deps.auth.clone(), system_models: seeding::SystemModels::new(deps.db.clone()) };
    let contracts = typed::Contracts::new(deps.db.clone(), deps.app.clone(), catalog.clone());
    let limit = deps.max_message_bytes;
    // Every write of a user model's records is announced, for WatchEntities and the typed
    // services' Watch.
    let records = Records::new(catalog.clone()).with_feed(ChangeFeed::of(&deps.db).with_outbox(deps.outbox.clone()));
    let entities = entities::entity_api(records.clone(), callers.clone(), deps.app.clone(), deps.stopping.clone())?;
    let typed = typed::TypedApi::new(records, callers.clone(), contracts.clone(), limit, deps.stopping.clone());
    let routes = Routes::new(
        ModelServiceServer::new(models::ModelApi::new(deps.clone(), workspaces, catalog, callers, contracts))
            .max_decoding_message_size(limit),
    )
    .add_service(EntityServiceServer::new(entities).max_decoding_message_size(limit));
    Ok(Routes::from(routes.into_axum_router().fallback_service(typed)))
}

/// Who is calling, for every RPC of the role: the token checked, and the caller's
/// workspace brought up to the current system models before anything reads them.
#[derive(Debug, Clone)]
pub struct Callers {
    auth: Authenticator,
    system_models: seeding::SystemModels,
}

impl Callers {
    pub async fn principal(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<kiln_common::Principal, tonic::Status> {
        let principal = self.auth.authenticate(metadata).await?;
        self.system_models.ensure(principal.workspace_id).await?;
        Ok(principal)
    }
}
