//! api-gateway: the one listener on :4000. REST under `/api/v1` (and `/api`), native gRPC
//! and grpc-web for every served `kiln.v1` service, health, readiness, metrics, the
//! OpenAPI document and its docs page. It reaches services only through their channels.

pub mod error;
pub mod grpc_edge;
pub mod limits;
pub mod openapi;
pub mod rest;
pub mod ui;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, OriginalUri, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{MethodRouter, get},
};
use kiln_common::{ErrorCode, grpc};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
};
use tracing::Instrument;

pub use error::ApiError;
pub use grpc_edge::Backends;

/// What the gateway needs from the configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub cors_origins: Vec<String>,
    /// Verify access tokens to rate-limit by user and workspace (services verify them
    /// again, with the session).
    pub keys: kiln_common::TokenKeys,
    pub auth_rate_limit_per_minute: u32,
    pub user_rate_limit_per_minute: u32,
    pub workspace_rate_limit_per_minute: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
}

impl GatewayConfig {
    pub fn from_config(config: &kiln_common::Config, keys: kiln_common::TokenKeys) -> Self {
        GatewayConfig {
            cors_origins: config.cors_origins.clone(),
            keys,
            auth_rate_limit_per_minute: config.auth_rate_limit_per_minute,
            user_rate_limit_per_minute: config.user_rate_limit_per_minute,
            workspace_rate_limit_per_minute: config.workspace_rate_limit_per_minute,
            trusted_proxies: config.trusted_proxies.clone(),
            request_timeout: config.request_timeout,
            max_concurrent_requests: config.max_concurrent_requests,
            max_body_bytes: config.max_body_bytes,
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct GatewayState {
    /// Shared, not copied, by every request.
    pub backends: Arc<Backends>,
    health: grpc_edge::RoleHealth,
    openapi_json: Arc<String>,
    docs_html: Arc<String>,
}

/// The whole app on one router. Serve it with connect info
/// ([`kiln_common::net::serve_http`]): the auth
/// rate limit is keyed by client address, one budget for REST `/auth` and AuthService
/// over gRPC and grpc-web.
pub async fn router(config: GatewayConfig, backends: Backends) -> anyhow::Result<Router> {
    let routes = rest::routes();
    rest::check(&routes, rest::descriptors())?;
    let doc = openapi::document(&routes, rest::descriptors())?;
    let (reporter, support) = grpc::with_support(&backends.service_names(), None).await?;
    // Installed before the first request, so nothing recorded is lost.
    kiln_common::telemetry::metrics_handle();
    let backends = Arc::new(backends);
    let health = grpc_edge::RoleHealth::new(backends.clone(), reporter);
    let state = GatewayState {
        health: health.clone(),
        openapi_json: Arc::new(serde_json::to_string_pretty(&doc)?),
        docs_html: Arc::new(openapi::docs_page(&doc)),
        backends: backends.clone(),
    };

    let auth_limit = limits::AuthLimit {
        limit: limits::KeyedLimit::per_minute(config.auth_rate_limit_per_minute),
        clients: limits::ClientAddress::new(config.trusted_proxies.clone()),
    };
    // One budget for the sign-in routes, per client address (and AuthService over gRPC).
    let limited = |route: &rest::Route, handler: MethodRouter<GatewayState>| {
        if grpc_edge::AUTH_LIMITED.contains(&route.service()) {
            handler.layer(middleware::from_fn_with_state(auth_limit.clone(), limits::limit_auth))
        } else {
            handler
        }
    };
    let api = rest::router(routes, limited)
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .fallback(api_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes));

    let grpc = grpc_edge::router(backends.clone(), support, health, auth_limit);
    let ui = ui::UiFiles::new("");

    Ok(Router::new()
        .nest("/api/v1", api.clone())
        .nest("/api", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(kiln_common::telemetry::metrics_page))
        .with_state(state)
        .merge(grpc)
        .fallback(move |request| fallback(ui.clone(), backends.clone(), request))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(limits::CallerLimit::new(&config), limits::limit_callers))
        .layer(middleware::from_fn_with_state(
            limits::Admission::new(config.max_concurrent_requests, config.request_timeout),
            limits::admit,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(cors(&config.cors_origins)?)
        .layer(middleware::from_fn(trace_request))
        .layer(CatchPanicLayer::custom(|_| ApiError::new(ErrorCode::Internal, "internal error").into_response())))
}

fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let expose = [
        header::HeaderName::from_static("grpc-status"),
        header::HeaderName::from_static("grpc-message"),
        header::HeaderName::from_static("grpc-status-details-bin"),
    ];
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins.iter().map(|o| HeaderValue::from_str(o)).collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-grpc-web"),
            header::HeaderName::from_static("x-user-agent"),
            header::HeaderName::from_static("grpc-timeout"),
            // A browser's own trace continues through the gateway.
            header::HeaderName::from_static("traceparent"),
            header::HeaderName::from_static("tracestate"),
        ])
        .expose_headers(expose)
        .max_age(Duration::from_secs(600)))
}

/// One server span per request, continuing the client's trace when it sends a
/// `traceparent`. Named by OpenTelemetry's conventions: `GET /api/v1/records/{kind}` for
/// REST (the route, never the query: it may hold record values), the gRPC method for
/// gRPC and grpc-web. Probes and scrapes are not traced.
async fn trace_request(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let grpc = grpc_edge::is_grpc(&request);
    let span = if grpc {
        grpc::rpc_span(path, "server")
    } else {
        let method = request.method().as_str();
        let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
        let name = match route {
            Some(route) => format!("{method} {route}"),
            None => method.to_string(),
        };
        tracing::info_span!(
            "http",
            otel.name = name,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            http.route = route,
            url.path = path,
            http.response.status_code = tracing::field::Empty,
        )
    };
    kiln_common::telemetry::extract(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    if grpc {
        span.record("rpc.grpc.status_code", grpc::answered_status(response.headers()));
    } else {
        span.record("http.response.status_code", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    response
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Clients choose the method: only the ones served become label values.
    let method = match *request.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            request.method().as_str().to_string()
        }
        _ => "other".to_string(),
    };
    // The matched route, not the raw path, keeps the label set small.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("kiln_http_requests_total", &labels).increment(1);
    metrics::histogram!("kiln_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// What a browser sees at the root until the UI is served there.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when every served service answers its health check.
async fn readyz(State(state): State<GatewayState>) -> Response {
    let failing = state.health.refresh().await;
    if failing.is_empty() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        ApiError::new(ErrorCode::Unavailable, "not ready")
            .with_details(serde_json::json!(
                failing
                    .iter()
                    .map(|s| serde_json::json!({ "field": s, "description": "not serving" }))
                    .collect::<Vec<_>>()
            ))
            .into_response()
    }
}

async fn openapi_json(State(state): State<GatewayState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi_json.as_str().to_owned())
}

async fn docs(State(state): State<GatewayState>) -> Html<String> {
    Html(state.docs_html.as_str().to_owned())
}

// Nested routers see the path without their prefix; errors name the one the client sent.
async fn api_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}", uri.path()))
}

/// Paths no route has: a workspace's typed services, a gRPC status for other gRPC calls,
/// the web UI for browsers (its files and its pages), the JSON error for everyone else.
async fn fallback(ui: ui::UiFiles, backends: Arc<grpc_edge::Backends>, request: Request) -> Response {
    if grpc_edge::is_grpc(&request) {
        if request.uri().path().starts_with(grpc_edge::WORKSPACE_SERVICES) {
            return grpc_edge::forward_to_workspace(backends, request).await;
        }
        return grpc_edge::unimplemented(request).await;
    }
    if let Some(page) = ui.answer(request.method(), request.uri().path(), request.headers()) {
        return page;
    }
    let mut response = ApiError::not_found(request.uri().path()).into_response();
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
