//! app-svc: identity (AuthService) and the records of the platform kinds it owns
//! (applications, components, templates, workflows, prompts; EntityService, reached
//! through model-svc); their own services join it as they are built. [`routes`] is the whole gRPC surface of the role.

pub mod auth;
pub mod records;
pub mod seeding;

use kiln_common::{Authenticator, Db};
use kiln_proto::v1::{auth_service_server::AuthServiceServer, entity_service_server::EntityServiceServer};
use tonic::{server::NamedService, service::Routes};

/// The tables app-svc owns (identity, sessions, the audit log, the records of the
/// system kinds it owns, seeding), applied by the process that runs app-svc.
pub static MIGRATIONS: kiln_common::db::Migrations = kiln_common::migrations!("app": 1 "0001_app");

/// The gRPC services this role serves to the edge, by full name.
pub const SERVICES: &[&str] = &[<AuthServiceServer<auth::AuthApi> as NamedService>::NAME];

/// The gRPC services this role serves to other roles only: EntityService for its kinds'
/// records, which model-svc (EntityService at the edge) sends on.
pub const PEER_SERVICES: &[&str] = &[<EntityServiceServer<records::PlatformRecords> as NamedService>::NAME];

/// What the role's services need.
#[derive(Debug, Clone)]
pub struct AppDeps {
    pub db: Db,
    pub auth: Authenticator,
    pub refresh_ttl: std::time::Duration,
    /// Largest request message accepted, as large as the largest REST body.
    pub max_message_bytes: usize,
}

/// Every service of the role.
pub fn routes(deps: AppDeps) -> anyhow::Result<Routes> {
    let limit = deps.max_message_bytes;
    let records = records::platform_records(deps.db.clone(), deps.auth.clone())?;
    Ok(Routes::new(AuthServiceServer::new(auth::AuthApi::new(deps)).max_decoding_message_size(limit))
        .add_service(EntityServiceServer::new(records).max_decoding_message_size(limit)))
}
