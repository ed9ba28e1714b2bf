//! gRPC and grpc-web at the edge: every `kiln.v1` call is handed, as is, to the channel
//! of the role that serves it, and a workspace's typed services (`kiln.ws.*`) to
//! model-svc; health and reflection are answered here. Health tells the truth about the
//! roles behind ([`RoleHealth`]), as `/readyz` does. Reflection asked with an access token
//! also lists and describes the caller's workspace's typed services.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::header,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::post,
};
use kiln_common::{GrpcChannel, config::Role, grpc};
use kiln_proto::v1::{GetTypedContractRequest, model_service_client::ModelServiceClient};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::limits::{self, AuthLimit};
use tonic::service::Routes;
use tower::{Layer, ServiceExt};

/// The channels to the roles, as the binary wired them.
#[derive(Debug, Clone)]
pub struct Backends {
    pub model: GrpcChannel,
    pub app: GrpcChannel,
    pub build: Option<GrpcChannel>,
    /// The services the roles serve (full names) and the role serving each, as each
    /// role's crate lists them; only these are routed, reported healthy and listed by
    /// reflection.
    pub services: Vec<(&'static str, Role)>,
    /// Cancelled when the gateway stops: relayed watches end then (see [`relay`]).
    pub stopping: CancellationToken,
}

impl Backends {
    pub fn channel_for(&self, service: &str) -> Option<&GrpcChannel> {
        let (_, role) = self.services.iter().find(|(name, _)| *name == service)?;
        match role {
            Role::Model => Some(&self.model),
            Role::App => Some(&self.app),
            Role::BuildWorker => self.build.as_ref(),
            Role::AllInOne | Role::Gateway | Role::Ui => None,
        }
    }

    /// The served services' full names.
    pub fn service_names(&self) -> Vec<&'static str> {
        self.services.iter().map(|(name, _)| *name).collect()
    }
}

/// How long a role has to answer its health check.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The roles' health as the gateway sees it: each served service's own health check,
/// asked through its channel when someone asks the gateway (`/readyz`, or its gRPC health
/// `Check` and `Watch`), and written into the gateway's gRPC health: a service is
/// NOT_SERVING while its role fails the check. The server's own entry (`""`) stays the
/// gateway's: it is up, and a probe of it (`kiln healthcheck`) must not restart a gateway
/// because a role behind it is down; `/readyz` is the probe that covers the roles.
#[derive(Clone)]
pub struct RoleHealth {
    backends: Arc<Backends>,
    reporter: HealthReporter,
}

impl RoleHealth {
    pub fn new(backends: Arc<Backends>, reporter: HealthReporter) -> Self {
        RoleHealth { backends, reporter }
    }

    /// Checks every served service now, all at once, and records the outcome; returns the
    /// services that failed.
    pub async fn refresh(&self) -> Vec<&'static str> {
        let checks = self.backends.services.iter().map(|&(service, _)| async move {
            let check = match self.backends.channel_for(service) {
                Some(channel) => tokio::time::timeout(HEALTH_CHECK_TIMEOUT, grpc::check_health(channel, service)).await,
                None => return (service, false),
            };
            (service, matches!(check, Ok(Ok(()))))
        });
        let mut failing = Vec::new();
        for (service, serving) in futures::future::join_all(checks).await {
            self.reporter.set_service_status(service, status(serving)).await;
            if !serving {
                failing.push(service);
            }
        }
        failing
    }
}

fn status(serving: bool) -> ServingStatus {
    if serving { ServingStatus::Serving } else { ServingStatus::NotServing }
}

/// Brings the gateway's gRPC health up to date before a health call is answered.
async fn fresh_health(State(health): State<RoleHealth>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/grpc.health.v1.Health/") {
        health.refresh().await;
    }
    next.run(request).await
}

/// Services whose methods share the auth surface's per-address rate limit.
pub(crate) const AUTH_LIMITED: &[&str] = &["kiln.v1.AuthService"];

/// The gRPC side of the listener: forwarding routes for served services plus the
/// gateway's own health (kept true by `health`) and reflection, wrapped for grpc-web.
/// `auth_limit` guards the AuthService methods as it guards REST `/auth`.
pub fn router(backends: Arc<Backends>, support: Routes, health: RoleHealth, auth_limit: AuthLimit) -> Router {
    let mut router = Router::new();
    for (service, _) in &backends.services {
        let route = post(forward);
        let route = if AUTH_LIMITED.contains(service) {
            route.route_layer(axum::middleware::from_fn_with_state(auth_limit.clone(), limits::limit_auth))
        } else {
            route
        };
        router = router.route(&format!("/{service}/{{method}}"), route);
    }
    router
        .with_state(backends.clone())
        .merge(
            support
                .into_axum_router()
                .layer(middleware::from_fn_with_state(health, fresh_health))
                .layer(middleware::from_fn_with_state(backends.clone(), reflect_workspace))
                .fallback(unimplemented),
        )
        // grpc-web only here: on the whole app it would turn plain REST calls into 400s.
        .layer(tonic_web::GrpcWebLayer::new())
}

async fn forward(State(backends): State<Arc<Backends>>, request: Request) -> Response {
    let service = request.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default().to_string();
    let Some(channel) = backends.channel_for(&service).cloned() else {
        return tonic::Status::unimplemented(format!("{service} is not served")).into_http::<Body>();
    };
    relay(channel, &service, request, &backends.stopping).await
}

/// Reflection for a caller with an access token: the platform's services and the typed
/// services of the caller's workspace (its contract, asked of model-svc with the caller's
/// token). Without a token, or with one model-svc refuses, the platform's only.
async fn reflect_workspace(State(backends): State<Arc<Backends>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let v1 = path.starts_with("/grpc.reflection.v1.ServerReflection/");
    if !(v1 || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")) {
        return next.run(request).await;
    }
    if !request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let mut ask = tonic::Request::new(GetTypedContractRequest {});
    crate::rest::copy_metadata(request.headers(), ask.metadata_mut());
    let Ok(contract) = ModelServiceClient::new(backends.model.clone()).get_typed_contract(ask).await else {
        return next.run(request).await;
    };
    let descriptor_set = contract.into_inner().descriptor_set;
    let mut services: Vec<String> = backends.service_names().into_iter().map(str::to_string).collect();
    if let Ok(pool) = prost_reflect::DescriptorPool::decode(descriptor_set.as_slice()) {
        let workspace = pool.services().filter(|s| s.package_name().starts_with("kiln.ws."));
        services.extend(workspace.map(|s| s.full_name().to_string()));
    }
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    let answer = match grpc::reflection(&names, &[descriptor_set.as_slice()]) {
        Ok((reflection_v1, _)) if v1 => reflection_v1.oneshot(request).await,
        Ok((_, reflection_v1alpha)) => reflection_v1alpha.oneshot(request).await,
        Err(e) => {
            tracing::error!(error = %e, "the workspace's contract cannot be reflected");
            return next.run(request).await;
        }
    };
    match answer {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// The prefix of every workspace's typed services, `kiln.ws.<workspace_slug>.v1`.
pub const WORKSPACE_SERVICES: &str = "/kiln.ws.";

/// A call to a workspace's typed services (model-svc answers them): their names are the
/// workspaces', so no route names them; the listener's fallback hands them here, and
/// grpc-web is unwrapped here as it is for the routed services.
pub async fn forward_to_workspace(backends: Arc<Backends>, request: Request) -> Response {
    let relayed = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let (channel, stopping) = (backends.model.clone(), backends.stopping.clone());
        async move { Ok::<_, std::convert::Infallible>(relay(channel, "kiln.ws", request, &stopping).await) }
    });
    match tonic_web::GrpcWebLayer::new().layer(relayed).oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// Hands `request` as is to `channel`, within the caller's deadline. A watch (a method
/// named `Watch…`: its stream ends only when the caller leaves) ends with UNAVAILABLE
/// when the gateway stops, so the gateway's drain does not wait for it; other answers
/// are left to finish.
async fn relay<B>(
    channel: GrpcChannel,
    service: &str,
    request: http::Request<B>,
    stopping: &CancellationToken,
) -> Response
where
    B: tonic::codegen::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let (mut parts, body) = request.into_parts();
    // The channel sets its own authority; a client's Host must not leak through.
    parts.headers.remove(header::HOST);
    if let Some(deadline) = parts.extensions.get::<limits::Deadline>() {
        parts.headers.insert("grpc-timeout", deadline.grpc_timeout());
    }
    if let Some(path) = parts.uri.path_and_query().cloned() {
        parts.uri = path.into();
    }
    let watch = is_watch(parts.uri.path());
    let request = http::Request::from_parts(parts, tonic::body::Body::new(body));
    match channel.oneshot(request).await {
        Ok(response) if watch => response.map(|body| Body::new(UntilStopped::grpc(body, stopping))),
        Ok(response) => response.map(Body::new),
        Err(e) => {
            tracing::error!(service, error = %e, "backend unreachable");
            tonic::Status::unavailable(format!("{service} is unavailable")).into_http::<Body>()
        }
    }
}

/// Whether the gRPC method of `path` (`/package.Service/Method`) is a watch: a stream
/// that ends only when its caller leaves (`Watch…`), which the gateway ends when it stops.
pub fn is_watch(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|method| method.starts_with("Watch"))
}

/// A streamed answer that, once the gateway stops, ends after the frame in flight: with
/// the trailers of UNAVAILABLE for gRPC, which tells a client to call again (another
/// gateway), or plainly for server-sent events, whose clients reconnect by themselves.
pub struct UntilStopped<B> {
    body: B,
    stopped: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    grpc: bool,
    ended: bool,
}

impl<B> UntilStopped<B> {
    fn grpc(body: B, stopping: &CancellationToken) -> Self {
        UntilStopped { body, stopped: Box::pin(stopping.clone().cancelled_owned()), grpc: true, ended: false }
    }

    pub fn events(body: B, stopping: &CancellationToken) -> Self {
        UntilStopped { grpc: false, ..UntilStopped::grpc(body, stopping) }
    }
}

impl<B> http_body::Body for UntilStopped<B>
where
    B: http_body::Body<Data = axum::body::Bytes> + Unpin,
{
    type Data = axum::body::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::{future::Future, task::Poll};
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.stopped.as_mut().poll(cx).is_ready() {
            this.ended = true;
            if !this.grpc {
                return Poll::Ready(None);
            }
            let status = tonic::Status::unavailable("the gateway is stopping; call again");
            let mut trailers = http::HeaderMap::new();
            if status.add_header(&mut trailers).is_err() {
                return Poll::Ready(None);
            }
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        let frame = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }
}

/// gRPC answer for a service or method nobody serves.
pub async fn unimplemented(request: Request) -> Response {
    tonic::Status::unimplemented(format!("{} is not served here", request.uri().path()))
        .into_http::<Body>()
        .into_response()
}

/// Whether a request speaks gRPC or grpc-web, by content type.
pub fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}
