//! Wires roles into a running process: [`start`] binds the listeners a role needs and
//! serves until its [`Running::stop`] (or a signal, from `main`). Tests start the same
//! way on port 0.

pub mod archive;
pub mod backup;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use kiln_api_gateway::{Backends, GatewayConfig};
use kiln_app_svc::{Automation, webhooks, workflows::triggers};
use kiln_build_worker::{
    feed::{BuildFeed, LocalFeed, RedisFeed},
    worker::{BUILD_QUEUE, ImageEngine, Worker},
};
use kiln_common::{
    Authenticator, Config, Db, GrpcChannel, TokenKeys,
    config::Role,
    db::DbOptions,
    events::{
        self, SharedBus,
        outbox::{self, Outbox, Owner},
    },
    grpc, net,
    queue::{self, JobQueue, QueueSettings, RedisQueue, TableQueue},
    sessions::{AskAppSvc, LiveSessions},
    token::load_or_generate_secret,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// A started process.
pub struct Running {
    /// The gateway's address (all-in-one and gateway roles).
    pub http_addr: Option<SocketAddr>,
    /// The gRPC address of a model, app or build-worker role.
    pub grpc_addr: Option<SocketAddr>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Asks the servers to stop and waits until in-flight requests have drained.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("server task panicked")?
    }

    /// Waits until the servers stop by themselves (after `stop_token` is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }

    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

/// Every service served and the role serving it: each role's crate lists its own.
fn all_services() -> Vec<(&'static str, Role)> {
    [
        (Role::Model, kiln_model_svc::SERVICES),
        (Role::App, kiln_app_svc::SERVICES),
        (Role::BuildWorker, kiln_build_worker::SERVICES),
    ]
    .into_iter()
    .flat_map(|(role, services)| services.iter().map(move |service| (*service, role)))
    .collect()
}

/// The keys that sign and verify access tokens.
fn token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let secret = match &config.jwt_secret {
        Some(secret) => secret.clone(),
        None => load_or_generate_secret(&config.data_dir)?,
    };
    Ok(TokenKeys::new(&secret, &config.jwt_previous_secrets, config.access_token_ttl))
}

async fn database(config: &Config) -> anyhow::Result<Db> {
    Db::connect(&config.database_url, DbOptions { statement_timeout: config.statement_timeout }).await
}

/// The migrations of the tables a role's services own, in the order they run.
fn owned_migrations(role: Role) -> &'static [&'static kiln_common::db::Migrations] {
    use kiln_common::db::Migrations;
    static ALL: [&Migrations; 3] =
        [&kiln_model_svc::MIGRATIONS, &kiln_app_svc::MIGRATIONS, &kiln_build_worker::MIGRATIONS];
    match role {
        Role::AllInOne => &ALL,
        Role::Model => &ALL[0..1],
        Role::App => &ALL[1..2],
        Role::BuildWorker => &ALL[2..3],
        Role::Gateway | Role::Ui => &[],
    }
}

/// Brings the tables the role owns up to date and stops: what a deployment's migration
/// job runs before the new version's processes start (they would migrate too, each at
/// its start; this makes the change once, before any of them serves). The owners
/// migrated, in order.
pub async fn migrate(config: &Config) -> anyhow::Result<Vec<&'static str>> {
    let owned = owned_migrations(config.role);
    if owned.is_empty() {
        anyhow::bail!("the {} role owns no tables", config.role.name());
    }
    let db = database(config).await?;
    let mut done = Vec::new();
    for migrations in owned {
        db.migrate(migrations).await?;
        done.push(migrations.owner);
    }
    // Without Redis the build queue is a table, made by whoever runs builds.
    if config.redis_url.is_none() && matches!(config.role, Role::AllInOne | Role::BuildWorker) {
        db.migrate(&queue::MIGRATIONS).await?;
        done.push(queue::MIGRATIONS.owner);
    }
    db.close().await;
    Ok(done)
}

/// The database, and the token check of a process that owns the sessions table
/// (app-svc, all-in-one).
async fn storage(config: &Config) -> anyhow::Result<(Db, Authenticator)> {
    let db = database(config).await?;
    let auth = Authenticator::new(token_keys(config)?, db.clone());
    Ok((db, auth))
}

/// The token check of a role without the sessions table: it asks app-svc, remembering
/// answers as long as the table's owner would.
fn asking_app_svc(config: &Config, db: &Db, app: GrpcChannel) -> anyhow::Result<Authenticator> {
    let source = AskAppSvc(app);
    Ok(Authenticator::with_sessions(token_keys(config)?, LiveSessions::new(source, db.clone())))
}

/// Binds and starts the role `config.role` names.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let stop = CancellationToken::new();
    match config.role {
        Role::AllInOne => {
            let (db, auth) = storage(&config).await?;
            let keys = auth.keys().clone();
            let builds = BuildParts::new(&config, &db).await?;
            let (build_routes, build_events) = build_service(&config, &db, auth.clone(), &builds).await?;
            let build = GrpcChannel::local("build", with_support(&build_services(), Some(build_routes)).await?);
            // app-svc asks model-svc for models, model-svc asks app-svc for sessions and
            // its kinds' records: the first made is given the other once it exists.
            let (model, model_slot) = GrpcChannel::deferred("model");
            let bus = events::bus(&config).await?;
            let (app, app_events, automation) =
                app_service(&config, &db, auth.clone(), model, build.clone(), &builds, &stop).await?;
            let app = GrpcChannel::local("app", with_support(&app_services(), Some(app)).await?);
            let (model, model_events) = model_service(&config, &db, auth, app.clone(), &stop).await?;
            let model = GrpcChannel::local("model", with_support(kiln_model_svc::SERVICES, Some(model)).await?);
            model_slot.fill(model.clone());
            let mut workers = builds.start_workers(&config, &db, &build_events, &stop);
            let relays =
                [app_events, model_events, build_events].map(|events| outbox::relay(events, bus.clone(), stop.clone()));
            workers.extend(relays);
            workers.extend(automate(automation, bus, &stop));
            let backends =
                Backends { model, app, build: Some(build), services: all_services(), stopping: stop.clone() };
            serve_gateway(&config, keys, backends, Some(db), workers, stop).await
        }
        Role::Gateway => {
            let backends = Backends {
                model: GrpcChannel::remote(&config.model_svc_url)?,
                app: GrpcChannel::remote(&config.app_svc_url)?,
                build: Some(GrpcChannel::remote(&config.build_worker_url)?),
                services: all_services(),
                stopping: stop.clone(),
            };
            tracing::info!(model = %config.model_svc_url, app = %config.app_svc_url, "the gateway's roles");
            serve_gateway(&config, token_keys(&config)?, backends, None, Vec::new(), stop).await
        }
        Role::Model => {
            let db = database(&config).await?;
            let app = GrpcChannel::remote(&config.app_svc_url)?;
            let auth = asking_app_svc(&config, &db, app.clone())?;
            let (routes, events) = model_service(&config, &db, auth, app, &stop).await?;
            let relay = outbox::relay(events, events::bus(&config).await?, stop.clone());
            serve_role(&config, kiln_model_svc::SERVICES, Some(routes), Some(db), vec![relay], stop).await
        }
        Role::App => {
            let (db, auth) = storage(&config).await?;
            let builds = BuildParts::new(&config, &db).await?;
            let model = GrpcChannel::remote(&config.model_svc_url)?;
            let build = GrpcChannel::remote(&config.build_worker_url)?;
            let (routes, events, automation) = app_service(&config, &db, auth, model, build, &builds, &stop).await?;
            let bus = events::bus(&config).await?;
            let mut workers = vec![outbox::relay(events, bus.clone(), stop.clone())];
            workers.extend(automate(automation, bus, &stop));
            serve_role(&config, &app_services(), Some(routes), Some(db), workers, stop).await
        }
        Role::BuildWorker => {
            let db = database(&config).await?;
            let auth = asking_app_svc(&config, &db, GrpcChannel::remote(&config.app_svc_url)?)?;
            let builds = BuildParts::new(&config, &db).await?;
            let (routes, events) = build_service(&config, &db, auth, &builds).await?;
            let mut workers = builds.start_workers(&config, &db, &events, &stop);
            workers.push(outbox::relay(events, events::bus(&config).await?, stop.clone()));
            serve_role(&config, &build_services(), Some(routes), Some(db), workers, stop).await
        }
        Role::Ui => {
            tracing::info!(gateway = %config.ui_api_url, "the web UI's gateway");
            serve_http(&config, kiln_api_gateway::ui::router(&config.ui_api_url), None, Vec::new(), stop).await
        }
    }
}

/// The build queue and the builds' live feed: Redis when `KILN_REDIS_URL` is set (the
/// mesh: every process shares them), else a table in the database and a feed in this
/// process.
#[derive(Clone)]
struct BuildParts {
    queue: Arc<dyn JobQueue>,
    feed: Arc<dyn BuildFeed>,
    settings: QueueSettings,
}

impl BuildParts {
    async fn new(config: &Config, db: &Db) -> anyhow::Result<Self> {
        let settings = QueueSettings {
            visibility: config.build_lease,
            max_attempts: config.build_max_attempts,
            ..QueueSettings::default()
        };
        Ok(match &config.redis_url {
            Some(url) => BuildParts {
                queue: Arc::new(RedisQueue::connect(url, &config.redis_prefix, BUILD_QUEUE, settings).await?),
                feed: Arc::new(RedisFeed::connect(url, &config.redis_prefix).await?),
                settings,
            },
            None => {
                db.migrate(&queue::MIGRATIONS).await?;
                BuildParts {
                    queue: Arc::new(TableQueue::new(db.clone(), BUILD_QUEUE, settings)),
                    feed: Arc::new(LocalFeed::default()),
                    settings,
                }
            }
        })
    }

    /// `KILN_BUILD_WORKERS` consumers of the queue, telling `events` each build's end,
    /// and the queue's gauges, until `stop`.
    fn start_workers(
        &self,
        config: &Config,
        db: &Db,
        events: &Outbox,
        stop: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let host = hostname();
        let gauges = tokio::spawn(kiln_build_worker::worker::queue_gauges(self.queue.clone(), stop.clone()));
        (0..config.build_workers)
            .map(|n| {
                let worker = Worker {
                    name: format!("{host}-{}-{n}", std::process::id()),
                    store: kiln_build_worker::store::BuildStore::new(db.clone()).with_events(events.clone()),
                    queue: self.queue.clone(),
                    feed: self.feed.clone(),
                    generated_dir: config.generated_dir.clone(),
                    engine: ImageEngine::Docker {
                        host: config.docker_host.clone(),
                        network: config.build_network.clone(),
                    },
                    keep_every: self.settings.visibility / 3,
                };
                tokio::spawn(worker.run(stop.clone()))
            })
            .chain([gauges])
            .collect()
    }
}

/// This machine's name, to tell workers apart in the queue.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_string()).unwrap_or_else(|_| "kiln".into())
}

/// build-worker's services on `db`, its tables migrated first.
async fn build_service(
    config: &Config,
    db: &Db,
    auth: Authenticator,
    builds: &BuildParts,
) -> anyhow::Result<(Routes, Outbox)> {
    db.migrate(owned_migrations(Role::BuildWorker)[0]).await?;
    let outbox = Outbox::new(db.clone(), Owner::Build);
    // Deployments whose containers changed while no process watched: in line with the
    // engine, in the background (an engine that does not answer must not hold start-up).
    let deployer = kiln_build_worker::deploy::Deployer::new(db.clone(), config.docker_host.clone());
    tokio::spawn(async move {
        match deployer.reconcile().await {
            Ok(0) => {}
            Ok(changed) => tracing::info!(changed, "deployments reconciled with the Docker engine"),
            Err(error) => tracing::warn!(error = format!("{error:#}"), "could not reconcile deployments"),
        }
    });
    let routes = kiln_build_worker::routes(kiln_build_worker::BuildDeps {
        db: db.clone(),
        auth,
        queue: builds.queue.clone(),
        feed: builds.feed.clone(),
        max_message_bytes: config.max_body_bytes,
        docker_host: config.docker_host.clone(),
        outbox: outbox.clone(),
    });
    Ok((routes, outbox))
}

/// Every service build-worker serves: to the edge and to app-svc.
fn build_services() -> Vec<&'static str> {
    [kiln_build_worker::SERVICES, kiln_build_worker::PEER_SERVICES].concat()
}

/// model-svc's services on `db`, its tables migrated first, and the outbox its changes'
/// events go to (a relay takes them to the bus); `app` reaches app-svc; its endless calls
/// (watches) end when `stop` is cancelled.
async fn model_service(
    config: &Config,
    db: &Db,
    auth: Authenticator,
    app: GrpcChannel,
    stop: &CancellationToken,
) -> anyhow::Result<(Routes, Outbox)> {
    db.migrate(owned_migrations(Role::Model)[0]).await?;
    let outbox = Outbox::new(db.clone(), Owner::Model);
    let deps = kiln_model_svc::ModelDeps {
        db: db.clone(),
        auth,
        max_message_bytes: config.max_body_bytes,
        app,
        stopping: stop.clone(),
        outbox: outbox.clone(),
    };
    Ok((kiln_model_svc::routes(deps)?, outbox))
}

/// app-svc's services on `db`, its tables migrated first and workspaces seeded by an
/// older version brought up to date (seeding belongs with registration, in app-svc), the
/// outbox its changes' events go to, and its workflow engine and webhook dispatcher.
async fn app_service(
    config: &Config,
    db: &Db,
    auth: Authenticator,
    model: GrpcChannel,
    build: GrpcChannel,
    builds: &BuildParts,
    stop: &CancellationToken,
) -> anyhow::Result<(Routes, Outbox, Automation)> {
    db.migrate(owned_migrations(Role::App)[0]).await?;
    let outbox = Outbox::new(db.clone(), Owner::App);
    kiln_app_svc::seeding::upgrade_workspaces(db).await?;
    let deps = kiln_app_svc::AppDeps {
        db: db.clone(),
        auth,
        refresh_ttl: config.refresh_token_ttl,
        max_message_bytes: config.max_body_bytes,
        model,
        build,
        queues: [(BUILD_QUEUE.to_string(), builds.queue.clone())].into(),
        stopping: stop.clone(),
        outbox: outbox.clone(),
        allow_private: config.webhook_allow_private,
        webhook_retries: webhooks::Retries { base: config.webhook_retry_base, window: config.webhook_retry_window },
    };
    let (routes, automation) = kiln_app_svc::routes(deps)?;
    Ok((routes, outbox, automation))
}

/// What works by itself beside app-svc: workflows started by the bus's events and by
/// schedules, and webhook deliveries recorded from the bus's events and sent.
fn automate(automation: Automation, bus: SharedBus, stop: &CancellationToken) -> [JoinHandle<()>; 4] {
    let Automation { workflows, webhooks } = automation;
    [
        tokio::spawn(triggers::follow_events(workflows.clone(), bus.clone(), stop.clone())),
        tokio::spawn(triggers::keep_schedules(workflows, stop.clone())),
        tokio::spawn(webhooks::follow_events(webhooks.clone(), bus, stop.clone())),
        tokio::spawn(webhooks::keep_delivering(webhooks, stop.clone())),
    ]
}

/// Every service app-svc serves: to the edge and to the other roles.
fn app_services() -> Vec<&'static str> {
    [kiln_app_svc::SERVICES, kiln_app_svc::PEER_SERVICES].concat()
}

/// The gateway on `KILN_HTTP_ADDR`, in front of `backends`, until `stop`.
async fn serve_gateway(
    config: &Config,
    keys: TokenKeys,
    backends: Backends,
    db: Option<Db>,
    background: Vec<JoinHandle<()>>,
    stop: CancellationToken,
) -> anyhow::Result<Running> {
    let router = kiln_api_gateway::router(GatewayConfig::from_config(config, keys), backends).await?;
    serve_http(config, router, db, background, stop).await
}

/// `router` on `KILN_HTTP_ADDR` (the gateway, or the ui role) until `stop`.
async fn serve_http(
    config: &Config,
    router: axum::Router,
    db: Option<Db>,
    background: Vec<JoinHandle<()>>,
    stop: CancellationToken,
) -> anyhow::Result<Running> {
    let listener = net::bind(config.http_addr, "KILN_HTTP_ADDR").await?;
    let http_addr = listener.local_addr()?;
    let database = db.as_ref().map(Db::dialect).unwrap_or("none");
    tracing::info!(role = config.role.name(), %http_addr, database, "kiln is up: http://{http_addr}");
    let served = net::serve_http(listener, router, shutdown_on(&stop));
    let task = tokio::spawn(drained_within(served, stop.clone(), config.shutdown_timeout, db, background));
    Ok(Running { http_addr: Some(http_addr), grpc_addr: None, stop, task })
}

/// A service role's gRPC `services` on `KILN_GRPC_ADDR`, with health and reflection,
/// until `stop`.
async fn serve_role(
    config: &Config,
    services: &[&str],
    routes: Option<Routes>,
    db: Option<Db>,
    background: Vec<JoinHandle<()>>,
    stop: CancellationToken,
) -> anyhow::Result<Running> {
    let routes = with_support(services, routes).await?;
    let listener = net::bind(config.grpc_addr, "KILN_GRPC_ADDR").await?;
    let grpc_addr = listener.local_addr()?;
    tracing::info!(role = config.role.name(), %grpc_addr, ?services, "role is up");
    let served = grpc::serve(listener, routes, shutdown_on(&stop));
    let task = tokio::spawn(drained_within(served, stop.clone(), config.shutdown_timeout, db, background));
    Ok(Running { http_addr: None, grpc_addr: Some(grpc_addr), stop, task })
}

/// Completes once `stop` is cancelled.
fn shutdown_on(stop: &CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let stop = stop.clone();
    async move { stop.cancelled().await }
}

/// Serves until `served` ends by itself, or until `limit` after `stop`: a graceful
/// shutdown waits for in-flight requests, but not for ever. The `background` tasks (build
/// workers) stop with `stop` and are waited for too. Then closes `db`, unless requests
/// are still in flight (closing would wait for them).
async fn drained_within(
    served: impl Future<Output = anyhow::Result<()>>,
    stop: CancellationToken,
    limit: Duration,
    db: Option<Db>,
    background: Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    let served = async move {
        let served = served.await;
        for task in background {
            let _ = task.await;
        }
        served
    };
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        served = served => {
            if let Some(db) = db {
                db.close().await;
            }
            served
        }
        () = deadline => {
            tracing::warn!(limit = ?limit, "in-flight requests did not finish in time; stopping anyway");
            Ok(())
        }
    }
}

/// A role's routes plus the health and reflection services that describe them, the
/// same whether the role is reached in process or over the network.
async fn with_support(
    services: &[&str],
    routes: Option<tonic::service::Routes>,
) -> anyhow::Result<tonic::service::Routes> {
    Ok(grpc::with_support(services, routes).await?.1)
}
