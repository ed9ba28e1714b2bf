//! app-svc: identity (AuthService), applications (ApplicationService, which starts
//! builds through the workspace's build workflow), code templates (TemplateService),
//! workflows and their runs (WorkflowService, and the engine that runs them), webhook
//! subscriptions and their deliveries (WebhookService, and the dispatcher), prompts
//! with their versions and test runs (PromptService), and
//! the records of the platform kinds it owns (applications, components, templates,
//! workflows, prompts; EntityService, reached through model-svc). [`routes`] is the whole
//! gRPC surface of the role.

pub mod applications;
pub mod auth;
pub mod prompts;
pub mod records;
pub mod sdk;
pub mod seeding;
pub mod templates;
pub mod typed;
pub mod webhooks;
pub mod workflows;

use kiln_common::{
    Authenticator, Db, GrpcChannel,
    records::{engine::Records, feed::ChangeFeed},
};
use kiln_proto::v1::{
    application_service_server::ApplicationServiceServer, auth_service_server::AuthServiceServer,
    entity_service_server::EntityServiceServer, prompt_service_server::PromptServiceServer,
    template_service_server::TemplateServiceServer, webhook_service_server::WebhookServiceServer,
    workflow_service_server::WorkflowServiceServer,
};
use tonic::{server::NamedService, service::Routes};

/// The tables app-svc owns (identity, sessions, the audit log, the records of the
/// system kinds it owns, seeding), applied by the process that runs app-svc.
pub static MIGRATIONS: kiln_common::db::Migrations = kiln_common::migrations!("app": 1 "0001_app", 2 "0002_workflow_runs", 3 "0003_workspace_slugs", 4 "0004_outbox", 5 "0005_workflow_engine", 6 "0006_webhooks", 7 "0007_prompts");

/// The gRPC services this role serves to the edge, by full name.
pub const SERVICES: &[&str] = &[
    <AuthServiceServer<auth::AuthApi> as NamedService>::NAME,
    <ApplicationServiceServer<applications::ApplicationApi> as NamedService>::NAME,
    <TemplateServiceServer<templates::TemplateApi> as NamedService>::NAME,
    <WorkflowServiceServer<workflows::api::WorkflowApi> as NamedService>::NAME,
    <WebhookServiceServer<webhooks::api::WebhookApi> as NamedService>::NAME,
    <PromptServiceServer<prompts::PromptApi> as NamedService>::NAME,
];

/// The gRPC services this role serves to other roles only: EntityService for its kinds'
/// records, which model-svc (EntityService at the edge) sends on.
pub const PEER_SERVICES: &[&str] = &[<EntityServiceServer<records::PlatformRecords> as NamedService>::NAME];

/// What the role's services need.
#[derive(Clone)]
pub struct AppDeps {
    pub db: Db,
    pub auth: Authenticator,
    pub refresh_ttl: std::time::Duration,
    /// Largest request message accepted, as large as the largest REST body.
    pub max_message_bytes: usize,
    /// model-svc, asked for an application's models.
    pub model: GrpcChannel,
    /// build-worker, where builds are opened.
    pub build: GrpcChannel,
    /// The queues workflows publish to (`app_builds`).
    pub queues: workflows::Queues,
    /// Cancelled when the process stops: calls that never end by themselves (watches) end.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Where the events of committed changes go (its relay runs beside the role).
    pub outbox: kiln_common::events::outbox::Outbox,
    /// Workflows' and webhooks' outgoing requests may reach private addresses
    /// (`KILN_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// How webhook deliveries are retried.
    pub webhook_retries: webhooks::Retries,
}

/// What runs beside the role's services: the workflow engine, whose triggers
/// ([`workflows::triggers`]) start runs, and the webhook dispatcher ([`webhooks`]).
#[derive(Clone)]
pub struct Automation {
    pub workflows: workflows::Workflows,
    pub webhooks: webhooks::Webhooks,
}

/// Every service of the role, and what runs beside them.
pub fn routes(deps: AppDeps) -> anyhow::Result<(Routes, Automation)> {
    let limit = deps.max_message_bytes;
    // One engine for both ways in (EntityService and the kinds' own services), announcing
    // every write for WatchEntities.
    let engine = Records::new(records::PlatformKinds::new(deps.db.clone())?)
        .with_feed(ChangeFeed::of(&deps.db).with_outbox(deps.outbox.clone()));
    let records = records::platform_records(engine.clone(), deps.auth.clone(), deps.stopping.clone());
    let kinds = typed::KindRecords::new(engine);
    let outgoing = workflows::outgoing::Outgoing::new(deps.allow_private)?;
    let prompt_api = prompts::PromptApi {
        records: kinds.clone(),
        auth: deps.auth.clone(),
        db: deps.db.clone(),
        outgoing: outgoing.clone(),
        keys: deps.auth.keys().clone(),
    };
    let webhooks =
        webhooks::Webhooks::new(deps.db.clone(), outgoing.clone(), deps.outbox.clone(), deps.webhook_retries);
    let engine = workflows::Workflows::new(
        deps.db.clone(),
        deps.queues.clone(),
        outgoing,
        deps.model.clone(),
        deps.auth.keys().clone(),
    );
    let applications = applications::ApplicationApi {
        records: kinds.clone(),
        auth: deps.auth.clone(),
        db: deps.db.clone(),
        model: deps.model.clone(),
        build: deps.build.clone(),
        workflows: engine.clone(),
    };
    let workflow_api =
        workflows::api::WorkflowApi { records: kinds.clone(), auth: deps.auth.clone(), engine: engine.clone() };
    let webhook_api = webhooks::api::WebhookApi { auth: deps.auth.clone(), webhooks: webhooks.clone() };
    let templates =
        templates::TemplateApi { records: kinds, auth: deps.auth.clone(), applications: applications.clone() };
    let routes = Routes::new(AuthServiceServer::new(auth::AuthApi::new(deps)).max_decoding_message_size(limit))
        .add_service(EntityServiceServer::new(records).max_decoding_message_size(limit))
        .add_service(ApplicationServiceServer::new(applications).max_decoding_message_size(limit))
        .add_service(TemplateServiceServer::new(templates).max_decoding_message_size(limit))
        .add_service(WorkflowServiceServer::new(workflow_api).max_decoding_message_size(limit))
        .add_service(WebhookServiceServer::new(webhook_api).max_decoding_message_size(limit))
        .add_service(PromptServiceServer::new(prompt_api).max_decoding_message_size(limit));
    Ok((routes, Automation { workflows: engine, webhooks }))
}
