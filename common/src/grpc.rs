//! How services reach each other: [`GrpcChannel`] is what every generated client is built
//! on. It wraps either a network channel (mesh) or a service's own routes in this process
//! (all-in-one); callers never know which. Each call over the network is a client span
//! whose trace context travels in the request's `traceparent`; each served call is a
//! server span under it (in process, under the caller's span), counted and timed per
//! method ([`observed`]). Also the support services
//! every gRPC listener serves: health and reflection (v1 and v1alpha).

use std::{
    convert::Infallible,
    future::Future,
    task::{Context, Poll},
    time::Instant,
};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::{body::Body, service::Routes, transport::Endpoint};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::{Service, ServiceExt, util::BoxCloneSyncService};
use tracing::Instrument;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A channel to one role's gRPC services, local or remote.
#[derive(Clone)]
pub struct GrpcChannel {
    inner: BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>,
    target: String,
    /// Whether calls leave the process: only those get a client span and carry the
    /// trace context in a `traceparent` header (in this process, the server span opens
    /// inside the caller's span and is its child already).
    remote: bool,
}

impl std::fmt::Debug for GrpcChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcChannel").field("target", &self.target).finish()
    }
}

impl GrpcChannel {
    /// Calls go straight to `routes` in this process, through the same codec and
    /// interceptors a network call meets.
    pub fn local(name: &str, routes: Routes) -> Self {
        let svc =
            ServiceExt::<http::Request<Body>>::map_err(observed(routes).prepare(), |never: Infallible| -> BoxError {
                match never {}
            });
        GrpcChannel { inner: BoxCloneSyncService::new(svc), target: format!("in-process:{name}"), remote: false }
    }

    /// Calls go over HTTP/2 to `url`; the connection is made on first use and remade
    /// when it breaks.
    pub fn remote(url: &str) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .with_context(|| format!("`{url}` is not a valid service URL"))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy().map_err(BoxError::from);
        Ok(GrpcChannel { inner: BoxCloneSyncService::new(channel), target: url.to_string(), remote: true })
    }
}

/// The other end of [`GrpcChannel::deferred`]: where the channel's target is put once it
/// exists.
#[derive(Clone)]
pub struct ChannelSlot(std::sync::Arc<std::sync::OnceLock<GrpcChannel>>);

impl ChannelSlot {
    /// Points the deferred channel at `channel`; only the first call counts.
    pub fn fill(&self, channel: GrpcChannel) {
        let _ = self.0.set(channel);
    }
}

impl GrpcChannel {
    /// A channel whose target is given later, through the returned slot: for two
    /// services in one process that call each other (app-svc and model-svc all-in-one),
    /// one of which must exist before the other. Calls before then are UNAVAILABLE.
    pub fn deferred(name: &str) -> (Self, ChannelSlot) {
        let slot = ChannelSlot(Default::default());
        let target = slot.0.clone();
        let service = tower::service_fn(move |request: http::Request<Body>| {
            let target = target.get().cloned();
            async move {
                match target {
                    Some(mut channel) => channel.ready().await?.call(request).await,
                    None => Ok(tonic::Status::unavailable("the service is starting").into_http()),
                }
            }
        });
        let channel = GrpcChannel {
            inner: BoxCloneSyncService::new(service),
            target: format!("in-process:{name}"),
            remote: false,
        };
        (channel, slot)
    }
}

impl Service<http::Request<Body>> for GrpcChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // In this process the served call's server span, opened inside the caller's span,
        // is the whole story; a client span is what a call leaving the process adds.
        if !self.remote {
            return Box::pin(self.inner.call(request));
        }
        let span = rpc_span(request.uri().path(), "client");
        crate::telemetry::inject_from(&span, request.headers_mut());
        Box::pin(self.inner.call(request).instrument(span))
    }
}

/// A span of one gRPC call, named and described by OpenTelemetry's RPC conventions
/// (`kiln.v1.ModelService/CreateModel`); `kind` is `client` or `server`. The status is
/// recorded once the answer begins.
pub fn rpc_span(path: &str, kind: &'static str) -> tracing::Span {
    let name = path.trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = kind,
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// `routes` with a server span per call, continuing the caller's trace, and its count
/// and duration by method in `/metrics`. Health checks and reflection are left out:
/// probes would drown the calls.
pub fn observed(routes: Routes) -> Routes {
    Routes::from(routes.into_axum_router().layer(axum::middleware::from_fn(observe_call)))
}

async fn observe_call(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/grpc.") {
        return next.run(request).await;
    }
    let span = rpc_span(&path, "server");
    crate::telemetry::extract(&span, request.headers());
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let code = answered_status(response.headers());
    span.record("rpc.grpc.status_code", code);
    if server_fault(code) {
        span.record("otel.status_code", "ERROR");
    }
    let (service, method) = method_labels(&path, code);
    let labels = [("service", service), ("method", method), ("code", format!("{:?}", tonic::Code::from(code)))];
    metrics::counter!("kiln_grpc_server_requests_total", &labels).increment(1);
    metrics::histogram!("kiln_grpc_server_duration_seconds", &labels[..2]).record(started.elapsed().as_secs_f64());
    response
}

/// The status code of a call as its answer's headers say it: a failed call answers with
/// its status there (trailers-only); a call that answers has it in the trailers, after its
/// messages, and counts as OK here.
pub fn answered_status(headers: &http::HeaderMap) -> i32 {
    headers.get("grpc-status").and_then(|value| value.to_str().ok()).and_then(|value| value.parse().ok()).unwrap_or(0)
}

/// The codes a server span counts as its own failure (OpenTelemetry's RPC conventions:
/// the server's fault, not the caller's).
fn server_fault(code: i32) -> bool {
    use tonic::Code;
    matches!(
        Code::from(code),
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The metric labels of a call: the platform's services by name; a workspace's typed
/// services (named after its models, without bound) and unknown paths together.
fn method_labels(path: &str, code: i32) -> (String, String) {
    let name = path.trim_start_matches('/');
    match name.split_once('/') {
        Some((service, method))
            if service.starts_with("kiln.v1.") && tonic::Code::from(code) != tonic::Code::Unimplemented =>
        {
            (service.to_string(), method.to_string())
        }
        Some((service, _)) if service.starts_with("kiln.ws.") => ("kiln.ws".into(), "typed".into()),
        _ => ("other".into(), "other".into()),
    }
}

/// `routes` (the services named in `services`, by full gRPC name) plus health and
/// reflection for them. Reflection lists only those, plus health and reflection.
pub async fn with_support(services: &[&str], routes: Option<Routes>) -> anyhow::Result<(HealthReporter, Routes)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in services {
        reporter.set_service_status(*name, ServingStatus::Serving).await;
    }
    let (v1, v1alpha) = reflection(services, &[])?;
    let routes = match routes {
        Some(routes) => routes.add_service(health),
        None => Routes::new(health),
    };
    Ok((reporter, routes.add_service(v1).add_service(v1alpha)))
}

/// Reflection, v1 and v1alpha, listing `services` (full names) plus health and
/// reflection, described from the `kiln.v1`, health and reflection descriptors and
/// `more` (encoded FileDescriptorSets: a workspace's typed contract).
pub fn reflection(
    services: &[&str],
    more: &[&[u8]],
) -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(kiln_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // Both reflection versions are listed, so both are described, by either.
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for set in more {
            builder = builder.register_encoded_file_descriptor_set(set);
        }
        for name in services {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let v1 = builder().build_v1().context("building reflection v1")?;
    let v1alpha = builder().build_v1alpha().context("building reflection v1alpha")?;
    Ok((v1, v1alpha))
}

/// Serves gRPC on `listener` until `shutdown` completes, then drains; beside it, over
/// HTTP/1.1 too, `/metrics` for Prometheus and `/healthz` for probes.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::telemetry::metrics_handle();
    let router = observed(routes)
        .into_axum_router()
        .route("/metrics", axum::routing::get(crate::telemetry::metrics_page))
        .route("/healthz", axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }));
    crate::net::serve_http(listener, router, shutdown).await.context("serving gRPC")
}

/// Checks that a channel's `service` answers its health check with SERVING.
pub async fn check_health(channel: &GrpcChannel, service: &str) -> Result<(), tonic::Status> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus as Wire, health_client::HealthClient,
    };
    let mut client = HealthClient::new(channel.clone());
    let response = client.check(HealthCheckRequest { service: service.to_string() }).await?.into_inner();
    if response.status() == Wire::Serving {
        Ok(())
    } else {
        Err(tonic::Status::unavailable(format!("{service} is not serving")))
    }
}
