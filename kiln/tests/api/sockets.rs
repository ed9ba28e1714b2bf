//! Socket options of accepted connections, read back from the running servers' own
//! sockets: without `TCP_NODELAY` every gRPC call stalls ~40 ms on Nagle's algorithm
//! (see `kiln_common::net`).

use std::{
    net::SocketAddr,
    os::fd::{BorrowedFd, RawFd},
};

use kiln_common::config::Role;

use crate::harness::{Backend, TestDatabase, spawn_app, test_config};

/// `TCP_NODELAY` of every connection this process accepted on `server`. Tests run the
/// servers in process, so their sockets are among this process's descriptors.
fn accepted_nodelay(server: SocketAddr) -> Vec<bool> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        // SAFETY: the descriptor is open (listed above) and only borrowed for these reads;
        // a descriptor closed meanwhile makes the reads fail, which skips it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
        // An accepted connection: bound to the server's address, with a peer that is not it.
        if local == Some(server) && peer.is_some_and(|p| p != server) {
            found.push(socket.tcp_nodelay().expect("TCP_NODELAY readable"));
        }
    }
    found
}

#[tokio::test]
async fn the_gateway_sets_nodelay_on_every_connection_it_accepts() {
    let app = spawn_app(Backend::Sqlite).await;
    // A REST call over HTTP/1.1 and a gRPC call over h2c, both kept open.
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut health = tonic_health::pb::health_client::HealthClient::new(crate::grpc::channel(app.addr).await);
    health.check(tonic_health::pb::HealthCheckRequest::default()).await.unwrap();

    let accepted = accepted_nodelay(app.addr);
    assert!(accepted.len() >= 2, "expected the open connections, found {accepted:?}");
    assert!(accepted.iter().all(|on| *on), "an accepted connection lacks TCP_NODELAY: {accepted:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_role_sets_nodelay_on_every_connection_it_accepts() {
    let database = TestDatabase::new(Backend::Postgres);
    let model = kiln::start(test_config(Role::Model, &database)).await.unwrap();
    let addr = model.grpc_addr.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(crate::grpc::channel(addr).await);
    health.check(tonic_health::pb::HealthCheckRequest::default()).await.unwrap();

    let accepted = accepted_nodelay(addr);
    assert!(!accepted.is_empty(), "no accepted connection found on {addr}");
    assert!(accepted.iter().all(|on| *on), "an accepted connection lacks TCP_NODELAY: {accepted:?}");
    model.stop().await.unwrap();
}
