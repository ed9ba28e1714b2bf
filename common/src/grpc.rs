//! How services reach each other: [`GrpcChannel`] is what every generated client is built
//! on. It wraps either a network channel (mesh) or a service's own routes in this process
//! (all-in-one); callers never know which. Also the support services every gRPC listener
//! serves: health and reflection (v1 and v1alpha).

use std::{
    convert::Infallible,
    future::Future,
    task::{Context, Poll},
};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_stream::{StreamExt, wrappers::TcpListenerStream};
use tonic::{
    body::Body,
    service::Routes,
    transport::{Endpoint, Server},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::{Service, ServiceExt, util::BoxCloneSyncService};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A channel to one role's gRPC services, local or remote.
#[derive(Clone)]
pub struct GrpcChannel {
    inner: BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>,
    target: String,
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
        let svc = ServiceExt::<http::Request<Body>>::map_err(routes.prepare(), |never: Infallible| -> BoxError {
            match never {}
        });
        GrpcChannel { inner: BoxCloneSyncService::new(svc), target: format!("in-process:{name}") }
    }

    /// Calls go over HTTP/2 to `url`; the connection is made on first use and remade
    /// when it breaks.
    pub fn remote(url: &str) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .with_context(|| format!("`{url}` is not a valid service URL"))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy().map_err(BoxError::from);
        Ok(GrpcChannel { inner: BoxCloneSyncService::new(channel), target: url.to_string() })
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
        (GrpcChannel { inner: BoxCloneSyncService::new(service), target: format!("in-process:{name}") }, slot)
    }
}

impl Service<http::Request<Body>> for GrpcChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = <BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError> as Service<
        http::Request<Body>,
    >>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.inner.call(request)
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

/// Serves gRPC (HTTP/2) on `listener` until `shutdown` completes, then drains. Accepted
/// connections get [`crate::net::configure_accepted`]: tonic's own socket options apply
/// only to listeners it binds itself.
pub async fn serve(listener: TcpListener, routes: Routes, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let incoming = TcpListenerStream::new(listener).map(|accepted| {
        if let Ok(stream) = &accepted {
            crate::net::configure_accepted(stream);
        }
        accepted
    });
    Server::builder().add_routes(routes).serve_with_incoming_shutdown(incoming, shutdown).await.context("serving gRPC")
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
