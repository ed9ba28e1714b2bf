//! Listening sockets: binding, serving, and the options every accepted connection gets,
//! the same for the gateway's listener and a role's gRPC listener.
//!
//! `TCP_NODELAY` matters here: gRPC writes a response in pieces (headers and data, then
//! trailers). With Nagle's algorithm on, the trailers wait for the client's ACK of the
//! data, which a delayed-ACK client holds back for up to 40 ms, so every call costs
//! ~40 ms however idle the server is. Neither `axum::serve` nor tonic's
//! `serve_with_incoming` sets the option on sockets they did not accept themselves.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};

/// Binds `addr`; the error names the setting that chose it.
pub async fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("{setting}: cannot listen on {addr}"))
}

/// Sets the options of an accepted connection. A failure is logged, not fatal: the
/// connection still works, only slower.
pub fn configure_accepted(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(error = %e, "could not set TCP_NODELAY on an accepted connection");
    }
}

/// Serves `router` on `listener` (HTTP/1.1 and h2c together: gRPC, and plain HTTP for
/// probes and scrapes) until `shutdown` completes, then drains; accepted connections get
/// [`configure_accepted`], handlers may read the peer's address (`ConnectInfo`).
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|stream| configure_accepted(stream));
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Into::into)
}
