//! gRPC and grpc-web at the edge: every `kiln.v1` call is handed, as is, to the channel
//! of the role that serves it; health and reflection are answered here.

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::header,
    response::{IntoResponse, Response},
    routing::post,
};
use kiln_common::GrpcChannel;

use crate::limits::{self, AuthLimit};
use tonic::service::Routes;
use tower::ServiceExt;

/// Which role serves which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Model,
    App,
    Build,
}

/// Every `kiln.v1` service and the role it belongs to (DESIGN.md §1).
pub const SERVICE_ROLES: &[(&str, Role)] = &[
    ("kiln.v1.ModelService", Role::Model),
    ("kiln.v1.EntityService", Role::Model),
    ("kiln.v1.AuthService", Role::App),
    ("kiln.v1.ApplicationService", Role::App),
    ("kiln.v1.TemplateService", Role::App),
    ("kiln.v1.WorkflowService", Role::App),
    ("kiln.v1.PromptService", Role::App),
    ("kiln.v1.BuildService", Role::Build),
];

/// The channels to the roles, as the binary wired them.
#[derive(Debug, Clone)]
pub struct Backends {
    pub model: GrpcChannel,
    pub app: GrpcChannel,
    pub build: Option<GrpcChannel>,
    /// The services the roles actually serve (full names); only these are routed,
    /// reported healthy and listed by reflection.
    pub services: Vec<&'static str>,
}

impl Backends {
    pub fn channel_for(&self, service: &str) -> Option<&GrpcChannel> {
        if !self.services.contains(&service) {
            return None;
        }
        let (_, role) = SERVICE_ROLES.iter().find(|(name, _)| *name == service)?;
        match role {
            Role::Model => Some(&self.model),
            Role::App => Some(&self.app),
            Role::Build => self.build.as_ref(),
        }
    }
}

/// Services whose methods share the auth surface's per-address rate limit.
const AUTH_LIMITED: &[&str] = &["kiln.v1.AuthService"];

/// The gRPC side of the listener: forwarding routes for served services plus the
/// gateway's own health and reflection, wrapped for grpc-web. `auth_limit` guards the
/// AuthService methods as it guards REST `/auth`.
pub fn router(backends: Backends, support: Routes, auth_limit: AuthLimit) -> Router {
    let mut router = Router::new();
    for service in &backends.services {
        let route = post(forward);
        let route = if AUTH_LIMITED.contains(service) {
            route.route_layer(axum::middleware::from_fn_with_state(auth_limit.clone(), limits::limit_auth))
        } else {
            route
        };
        router = router.route(&format!("/{service}/{{method}}"), route);
    }
    router
        .with_state(backends)
        .merge(support.into_axum_router().fallback(unimplemented))
        // grpc-web only here: on the whole app it would turn plain REST calls into 400s.
        .layer(tonic_web::GrpcWebLayer::new())
}

async fn forward(State(backends): State<Backends>, request: Request) -> Response {
    let service = request.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default().to_string();
    let Some(channel) = backends.channel_for(&service).cloned() else {
        return tonic::Status::unimplemented(format!("{service} is not served")).into_http::<Body>();
    };
    let (mut parts, body) = request.into_parts();
    // The channel sets its own authority; a client's Host must not leak through.
    parts.headers.remove(header::HOST);
    if let Some(deadline) = parts.extensions.get::<limits::Deadline>() {
        parts.headers.insert("grpc-timeout", deadline.grpc_timeout());
    }
    if let Some(path) = parts.uri.path_and_query().cloned() {
        parts.uri = path.into();
    }
    let request = http::Request::from_parts(parts, tonic::body::Body::new(body));
    match channel.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => {
            tracing::error!(service, error = %e, "backend unreachable");
            tonic::Status::unavailable(format!("{service} is unavailable")).into_http::<Body>()
        }
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
