//! build-worker: BuildService and the consumer of the `app_builds` queue. A build is
//! opened by app-svc (BuildRecordService, when an application is generated), queued by
//! the workspace's build workflow, and run here: the template set rendered with tera
//! into a source tree, the tree built into an image with bollard, each step, log line
//! and status recorded (`store`) and announced live (`feed`).

pub mod deploy;
pub mod docker;
pub mod feed;
pub mod render;
pub mod service;
pub mod store;
pub mod worker;

use std::sync::Arc;

use kiln_common::{Authenticator, Db, queue::JobQueue};
use kiln_proto::v1::{build_record_service_server::BuildRecordServiceServer, build_service_server::BuildServiceServer};
use tonic::{server::NamedService, service::Routes};

/// The tables build-worker owns: builds, their logs and artifacts.
pub static MIGRATIONS: kiln_common::db::Migrations =
    kiln_common::migrations!("build": 1 "0001_builds", 2 "0002_deployments", 3 "0003_build_numbers", 4 "0004_outbox");

/// The gRPC services this role serves to the edge, by full name.
pub const SERVICES: &[&str] = &[<BuildServiceServer<service::BuildApi> as NamedService>::NAME];

/// The gRPC services this role serves to other roles only: app-svc opens builds.
pub const PEER_SERVICES: &[&str] = &[<BuildRecordServiceServer<service::BuildApi> as NamedService>::NAME];

/// What the role's services need.
#[derive(Clone)]
pub struct BuildDeps {
    pub db: Db,
    pub auth: Authenticator,
    pub queue: Arc<dyn JobQueue>,
    pub feed: Arc<dyn feed::BuildFeed>,
    pub max_message_bytes: usize,
    /// The Docker engine deployments run on (`KILN_DOCKER_HOST`).
    pub docker_host: Option<String>,
    /// Where the events of builds' ends go (its relay runs beside the role).
    pub outbox: kiln_common::events::outbox::Outbox,
}

/// Every service of the role.
pub fn routes(deps: BuildDeps) -> Routes {
    let api = service::BuildApi {
        deployer: deploy::Deployer::new(deps.db.clone(), deps.docker_host),
        store: store::BuildStore::new(deps.db).with_events(deps.outbox),
        auth: deps.auth,
        feed: deps.feed,
        queue: deps.queue,
    };
    let limit = deps.max_message_bytes;
    Routes::new(BuildServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(BuildRecordServiceServer::new(api).max_decoding_message_size(limit))
}
