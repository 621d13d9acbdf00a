//! The ops listener (`OPS_LISTEN_ADDR`): `/metrics`, `/healthz` and `/readyz` on an address of
//! their own, so Prometheus and the kubelet reach them while the Ingress and the public port
//! never serve `/metrics` (issue #14, item 6).

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::http;
use crate::state::AppState;

/// Where the ops endpoints listen when `OPS_LISTEN_ADDR` is unset: loopback only, so a
/// `cargo run` exposes nothing; containers set `0.0.0.0:9090`.
pub const DEFAULT_OPS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

/// Binds the ops listener. A configured address must be bound; the default falls back to a
/// free loopback port (logged) when 9090 is taken, so several gateways started on one host
/// without the setting (tests, a local cluster) all come up.
pub async fn bind(configured: Option<SocketAddr>) -> std::io::Result<TcpListener> {
    match configured {
        Some(addr) => TcpListener::bind(addr).await,
        None => match TcpListener::bind(DEFAULT_OPS_ADDR).await {
            Ok(listener) => Ok(listener),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                let listener = TcpListener::bind(SocketAddr::new(DEFAULT_OPS_ADDR.ip(), 0)).await?;
                tracing::warn!(
                    taken = %DEFAULT_OPS_ADDR,
                    ops = %listener.local_addr()?,
                    "default ops address taken: ops endpoints on a free loopback port (set OPS_LISTEN_ADDR)"
                );
                Ok(listener)
            }
            Err(error) => Err(error),
        },
    }
}

/// The routes of the ops listener.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(http::ops::healthz))
        .route("/readyz", get(http::ops::readyz))
        .route("/metrics", get(http::ops::metrics))
        .with_state(state)
}
