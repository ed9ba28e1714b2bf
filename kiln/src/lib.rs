//! Wires roles into a running process: [`start`] binds the listeners a role needs and
//! serves until its [`Running::stop`] (or a signal, from `main`). Tests start the same
//! way on port 0.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use kiln_api_gateway::{Backends, GatewayConfig};
use kiln_common::{
    Authenticator, Config, Db, GrpcChannel, TokenKeys,
    config::Role,
    db::DbOptions,
    grpc, net,
    sessions::{AskAppSvc, LiveSessions},
    token::load_or_generate_secret,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// The database, and the token check of a process that owns the sessions table
/// (app-svc, all-in-one).
async fn storage(config: &Config) -> anyhow::Result<(Db, Authenticator)> {
    let db = database(config).await?;
    let auth = Authenticator::new(token_keys(config)?, db.clone());
    Ok((db, auth))
}

/// The token check of a role without the sessions table: it asks app-svc, remembering
/// answers as long as the table's owner would.
fn asking_app_svc(config: &Config, db: &Db) -> anyhow::Result<Authenticator> {
    let source = AskAppSvc(GrpcChannel::remote(&config.app_svc_url)?);
    Ok(Authenticator::with_sessions(token_keys(config)?, LiveSessions::new(source, db.clone())))
}

/// Settings this version reads but does not act on yet; said at start-up rather than
/// silently ignored.
fn warn_unused_settings(config: &Config) {
    let unused = [
        ("KILN_REDIS_URL", config.redis_url.is_some()),
        ("KILN_AMQP_URL", config.amqp_url.is_some()),
        ("KILN_DOCKER_HOST", config.docker_host.is_some()),
        ("KILN_OTLP_ENDPOINT", config.otlp_endpoint.is_some()),
    ];
    for (setting, set) in unused {
        if set {
            tracing::warn!(setting, "set, but this version does not use it yet");
        }
    }
}

/// Binds and starts the role `config.role` names.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    warn_unused_settings(&config);
    let stop = CancellationToken::new();
    let shutdown = {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    };
    match config.role {
        Role::AllInOne => {
            let (db, auth) = storage(&config).await?;
            db.migrate(&kiln_app_svc::MIGRATIONS).await?;
            db.migrate(&kiln_model_svc::MIGRATIONS).await?;
            let auth_keys = auth.keys().clone();
            kiln_app_svc::seeding::upgrade_workspaces(&db).await?;
            let model = kiln_model_svc::routes(kiln_model_svc::ModelDeps {
                db: db.clone(),
                auth: auth.clone(),
                max_message_bytes: config.max_body_bytes,
            });
            let app = kiln_app_svc::routes(kiln_app_svc::AppDeps {
                db: db.clone(),
                auth,
                refresh_ttl: config.refresh_token_ttl,
                max_message_bytes: config.max_body_bytes,
            });
            let backends = Backends {
                model: GrpcChannel::local("model", with_support(kiln_model_svc::SERVICES, Some(model)).await?),
                app: GrpcChannel::local("app", with_support(kiln_app_svc::SERVICES, Some(app)).await?),
                build: None,
                services: all_services(),
            };
            let listener = net::bind(config.http_addr, "KILN_HTTP_ADDR").await?;
            let http_addr = listener.local_addr()?;
            let router = kiln_api_gateway::router(GatewayConfig::from_config(&config, auth_keys), backends).await?;
            tracing::info!(role = "all-in-one", %http_addr, database = db.dialect(), "kiln is up: http://{http_addr}");
            let served = kiln_api_gateway::serve(listener, router, shutdown);
            let task = tokio::spawn(drained_within(served, stop.clone(), config.shutdown_timeout, Some(db)));
            Ok(Running { http_addr: Some(http_addr), grpc_addr: None, stop, task })
        }
        Role::Gateway => {
            let backends = Backends {
                model: GrpcChannel::remote(&config.model_svc_url)?,
                app: GrpcChannel::remote(&config.app_svc_url)?,
                build: Some(GrpcChannel::remote(&config.build_worker_url)?),
                services: all_services(),
            };
            let listener = net::bind(config.http_addr, "KILN_HTTP_ADDR").await?;
            let http_addr = listener.local_addr()?;
            let router =
                kiln_api_gateway::router(GatewayConfig::from_config(&config, token_keys(&config)?), backends).await?;
            tracing::info!(role = "gateway", %http_addr, model = %config.model_svc_url, app = %config.app_svc_url, "gateway is up");
            let served = kiln_api_gateway::serve(listener, router, shutdown);
            let task = tokio::spawn(drained_within(served, stop.clone(), config.shutdown_timeout, None));
            Ok(Running { http_addr: Some(http_addr), grpc_addr: None, stop, task })
        }
        Role::Model | Role::App | Role::BuildWorker => {
            let (services, routes, db) = match config.role {
                Role::Model => {
                    let db = database(&config).await?;
                    db.migrate(&kiln_model_svc::MIGRATIONS).await?;
                    let auth = asking_app_svc(&config, &db)?;
                    let routes = kiln_model_svc::routes(kiln_model_svc::ModelDeps {
                        db: db.clone(),
                        auth,
                        max_message_bytes: config.max_body_bytes,
                    });
                    (kiln_model_svc::SERVICES, Some(routes), Some(db))
                }
                Role::App => {
                    let (db, auth) = storage(&config).await?;
                    db.migrate(&kiln_app_svc::MIGRATIONS).await?;
                    // Seeding belongs with registration, in app-svc: one role upgrades.
                    kiln_app_svc::seeding::upgrade_workspaces(&db).await?;
                    let deps = kiln_app_svc::AppDeps {
                        db: db.clone(),
                        auth,
                        refresh_ttl: config.refresh_token_ttl,
                        max_message_bytes: config.max_body_bytes,
                    };
                    (kiln_app_svc::SERVICES, Some(kiln_app_svc::routes(deps)), Some(db))
                }
                _ => (kiln_build_worker::SERVICES, None, None),
            };
            let routes = with_support(services, routes).await?;
            let listener = net::bind(config.grpc_addr, "KILN_GRPC_ADDR").await?;
            let grpc_addr = listener.local_addr()?;
            tracing::info!(role = config.role.name(), %grpc_addr, ?services, "role is up");
            let served = grpc::serve(listener, routes, shutdown);
            let task = tokio::spawn(drained_within(served, stop.clone(), config.shutdown_timeout, db));
            Ok(Running { http_addr: None, grpc_addr: Some(grpc_addr), stop, task })
        }
    }
}

/// Serves until `served` ends by itself, or until `limit` after `stop`: a graceful
/// shutdown waits for in-flight requests, but not for ever. Then closes `db`, unless
/// requests are still in flight (closing would wait for them).
async fn drained_within(
    served: impl Future<Output = anyhow::Result<()>>,
    stop: CancellationToken,
    limit: Duration,
    db: Option<Db>,
) -> anyhow::Result<()> {
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
