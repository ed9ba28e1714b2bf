//! Limits at the edge, the same for every protocol, each answering in the caller's
//! protocol (JSON error, or gRPC status): rate limits guard REST routes and the gRPC and
//! grpc-web methods of the same service with one budget (429 with `Retry-After`, or
//! `RESOURCE_EXHAUSTED`): per client address on the auth surface, per user and per
//! workspace on every signed-in call ([`limit_callers`]); [`admit`] bounds how many requests run at once (503 or
//! `UNAVAILABLE`) and how long one may take to answer (504 or `DEADLINE_EXCEEDED`).
//!
//! Who the client is: the peer address, unless the peer is a trusted proxy
//! (`KILN_TRUSTED_PROXIES`); then the right-most address of `X-Forwarded-For` that is not
//! itself a trusted proxy. A client cannot pick its own address by sending the header.

use std::{
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use ipnet::IpNet;
use kiln_common::ErrorCode;

use crate::{ApiError, grpc_edge};

/// Requests per key over a window; the whole window may be spent at once (burst).
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyedLimit<K> {
    /// `per_minute` requests per key and minute, all of them at once if need be.
    pub fn per_minute(per_minute: u32) -> Arc<Self> {
        let burst = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(burst).allow_burst(burst);
        let limit = Arc::new(KeyedLimit { limiter: DefaultKeyedRateLimiter::keyed(quota) });
        // Forget idle keys now and then so the table does not grow without bound.
        let weak = Arc::downgrade(&limit);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limit) = weak.upgrade() else { return };
                limit.limiter.retain_recent();
                limit.limiter.shrink_to_fit();
            }
        });
        limit
    }

    /// `Ok` if `key` may make one more request, else how long until it may.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
    }
}

/// Finds the client's address behind trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    trusted_proxies: Arc<Vec<IpNet>>,
}

impl ClientAddress {
    pub fn new(trusted_proxies: Vec<IpNet>) -> Self {
        ClientAddress { trusted_proxies: Arc::new(trusted_proxies) }
    }

    fn trusted(&self, ip: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// The client of a request that came from `peer`.
    pub fn of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(&peer) {
            return peer;
        }
        // Each proxy appends the address it saw; walk back over the trusted ones.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted(&ip) => continue,
                Ok(ip) => return ip,
                // Garbage in the chain: trust nothing left of it.
                Err(_) => return peer,
            }
        }
        peer
    }
}

/// The per-address limit of the auth surface, with how to find the address.
#[derive(Clone)]
pub struct AuthLimit {
    pub limit: Arc<KeyedLimit<IpAddr>>,
    pub clients: ClientAddress,
}

/// Middleware: one request of the client's budget, or a refusal in its protocol.
pub async fn limit_auth(State(auth): State<AuthLimit>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let client = auth.clients.of(peer, request.headers());
    match auth.limit.check(&client) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many(&request, wait),
    }
}

/// The refusal: `RESOURCE_EXHAUSTED` for gRPC and grpc-web, else a JSON 429; both say
/// when to retry.
fn too_many(request: &Request, wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let message = format!("too many requests; retry in {seconds}s");
    let mut response = if grpc_edge::is_grpc(request) {
        tonic::Status::resource_exhausted(message).into_http::<axum::body::Body>()
    } else {
        ApiError::new(ErrorCode::ResourceExhausted, message).into_response()
    };
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The per-user and per-workspace budgets of signed-in calls.
#[derive(Clone)]
pub struct CallerLimit {
    keys: kiln_common::TokenKeys,
    users: Option<Arc<KeyedLimit<uuid::Uuid>>>,
    workspaces: Option<Arc<KeyedLimit<uuid::Uuid>>>,
}

impl CallerLimit {
    pub fn new(config: &crate::GatewayConfig) -> Self {
        let limit = |per_minute: u32| (per_minute > 0).then(|| KeyedLimit::per_minute(per_minute));
        CallerLimit {
            keys: config.keys.clone(),
            users: limit(config.user_rate_limit_per_minute),
            workspaces: limit(config.workspace_rate_limit_per_minute),
        }
    }
}

/// Middleware: a call with a valid access token spends one request of its user's and its
/// workspace's budgets. Calls without one are left to the services, which refuse them.
pub async fn limit_callers(State(callers): State<CallerLimit>, request: Request, next: Next) -> Response {
    if callers.users.is_none() && callers.workspaces.is_none() {
        return next.run(request).await;
    }
    let claims = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(kiln_common::token::bearer)
        .and_then(|token| callers.keys.verify(token).ok());
    if let Some(claims) = claims {
        for (limit, key) in [(&callers.users, claims.sub), (&callers.workspaces, claims.ws)] {
            if let Some(Err(wait)) = limit.as_ref().map(|limit| limit.check(&key)) {
                return too_many(&request, wait);
            }
        }
    }
    next.run(request).await
}

/// How many requests run at once, and how long each may take to begin its answer.
#[derive(Clone)]
pub struct Admission {
    in_flight: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

impl Admission {
    pub fn new(max_concurrent: usize, timeout: Duration) -> Self {
        Admission { in_flight: Arc::new(tokio::sync::Semaphore::new(max_concurrent)), timeout }
    }
}

/// Paths that answer whatever the load: probes and metrics.
const UNLIMITED: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Middleware: admits a request if fewer than the maximum are running, and gives it until
/// the request timeout (or the client's shorter `grpc-timeout`) to answer.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    if UNLIMITED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let grpc = grpc_edge::is_grpc(&request);
    let Ok(_permit) = admission.in_flight.clone().try_acquire_owned() else {
        let message = "the server is busy; retry shortly";
        let mut response = if grpc {
            tonic::Status::unavailable(message).into_http::<axum::body::Body>()
        } else {
            ApiError::new(ErrorCode::Unavailable, message).into_response()
        };
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        return response;
    };
    let limit = match grpc.then(|| grpc_timeout(request.headers())).flatten() {
        Some(asked) => asked.min(admission.timeout),
        None => admission.timeout,
    };
    let mut request = request;
    request.extensions_mut().insert(Deadline(tokio::time::Instant::now() + limit));
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("no answer within {}ms", limit.as_millis());
            if grpc {
                tonic::Status::deadline_exceeded(message).into_http::<axum::body::Body>()
            } else {
                ApiError::new(ErrorCode::DeadlineExceeded, message).into_response()
            }
        }
    }
}

/// When the gateway gives up on a request; forwarded calls tell their backend.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub tokio::time::Instant);

impl Deadline {
    /// The `grpc-timeout` a backend gets: a little past the gateway's own deadline, so the
    /// gateway answers DEADLINE_EXCEEDED first and the backend stops soon after.
    pub fn grpc_timeout(self) -> HeaderValue {
        let left = self.0.saturating_duration_since(tokio::time::Instant::now()) + Duration::from_millis(50);
        // At most 8 digits, as the header allows.
        let millis = left.as_millis().min(99_999_999);
        HeaderValue::try_from(format!("{millis}m")).unwrap_or(HeaderValue::from_static("99999999m"))
    }
}

/// A gRPC client's deadline: `grpc-timeout: <up to 8 digits><H|M|S|m|u|n>`.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxies = ClientAddress::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        // An untrusted peer cannot choose its address.
        assert_eq!(proxies.of(outsider, &forwarded("198.51.100.1")), outsider);
        // Behind two trusted hops, the first untrusted address from the right.
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let chain = forwarded("198.51.100.1, 203.0.113.7, 10.9.9.9");
        assert_eq!(proxies.of(proxy, &chain), "203.0.113.7".parse::<IpAddr>().unwrap());
        // Nothing forwarded, or garbage: the proxy itself.
        assert_eq!(proxies.of(proxy, &HeaderMap::new()), proxy);
        assert_eq!(proxies.of(proxy, &forwarded("not-an-ip")), proxy);
        assert_eq!(ClientAddress::default().of(proxy, &chain), proxy);
    }

    #[test]
    fn grpc_timeouts_parse_as_the_spec_writes_them() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [("250m", Some(Duration::from_millis(250))), ("2S", Some(Duration::from_secs(2)))] {
            headers.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(grpc_timeout(&headers), expected, "{value}");
        }
        for bad in ["", "m", "123456789S", "5x", "-1S"] {
            headers.insert("grpc-timeout", bad.parse().unwrap());
            assert_eq!(grpc_timeout(&headers), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_key_spends_its_budget_and_is_told_when_to_retry() {
        let limit = KeyedLimit::per_minute(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(limit.check(&a).is_ok() && limit.check(&a).is_ok());
        let wait = limit.check(&a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limit.check(&b).is_ok(), "another key has its own budget");
    }
}
