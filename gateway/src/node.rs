//! A running gateway: the listener, the background tasks (health probe, user events, embedded
//! workers), and the graceful drain a rolling update relies on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;
use chat_shared::auth::JwtVerifier;
use chat_shared::bus::Bus;
use chat_shared::protocol::close_code;
use chat_shared::session::SessionStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::embedded::spawn_workers;
use crate::state::AppState;

/// What a gateway runs on.
pub struct Deps {
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn SessionStore>,
    pub verifier: JwtVerifier,
    /// Run the router and a bot worker in this process (embedded mode).
    pub in_process_workers: bool,
}

/// A started gateway.
pub struct Node {
    pub state: AppState,
    pub addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Node {
    /// Binds `config.listen_addr` and serves until [`Node::shutdown`].
    pub async fn start(config: GatewayConfig, deps: Deps) -> std::io::Result<Node> {
        let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let max_text = config.limits.max_text_chars as usize;
        let bot_args = config.bot.clone();
        let state = AppState::new(config, deps.verifier, deps.bus.clone(), deps.store);
        let mut background = vec![
            tokio::spawn(state.clone().run_health_probe(stop.clone())),
            tokio::spawn(state.hub.clone().run_user_events(stop.clone())),
            tokio::spawn(state.admission.clone().run_lease_renewal(stop.clone())),
            // Presence (issue #13).
            tokio::spawn(state.presence.clone().run(stop.clone())),
        ];
        if deps.in_process_workers {
            let workers = spawn_workers(
                state.bus.clone(),
                &bot_args,
                max_text,
                &state.metrics,
                stop.clone(),
            )
            .map_err(std::io::Error::other)?;
            background.extend(workers);
        }
        let app = crate::app(state.clone()).into_make_service();
        // Frames go out as soon as they are flushed: with Nagle's algorithm a second small
        // write waits for the client's delayed ACK (40 ms on Linux).
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
        });
        let server_stop = stop.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { server_stop.cancelled().await })
                .await
        });
        Ok(Node {
            state,
            addr,
            stop,
            server,
            background,
        })
    }

    /// The drain of a rolling update: fail readiness, wait `readiness_delay` for the load
    /// balancer to notice, then close every client with 1012 spread evenly over `close_window`.
    pub async fn drain(&self, readiness_delay: Duration, close_window: Duration) {
        self.state.health.draining.store(true, Ordering::Relaxed);
        tracing::info!(?readiness_delay, ?close_window, "draining");
        tokio::time::sleep(readiness_delay).await;
        let connections = self.state.hub.connections();
        let step = close_window
            .checked_div(connections.len().max(1) as u32)
            .unwrap_or_default();
        for conn in connections {
            conn.close(close_code::SERVER_RESTARTING, "server restarting");
            if !step.is_zero() {
                tokio::time::sleep(step).await;
            }
        }
    }

    /// Stops serving and the background tasks, and waits for them.
    pub async fn shutdown(self) {
        for conn in self.state.hub.connections() {
            conn.close(close_code::SERVER_RESTARTING, "server restarting");
        }
        self.stop.cancel();
        if let Ok(Err(error)) = self.server.await {
            tracing::warn!(%error, "server ended with an error");
        }
        for task in self.background {
            let _ = task.await;
        }
    }

    /// Convenience for embedded mode and tests: in-memory bus and store.
    pub fn embedded_deps(verifier: JwtVerifier) -> Deps {
        Deps {
            bus: chat_shared::memory_bus::MemoryBus::new(Default::default()),
            store: Arc::new(chat_shared::memory_store::MemoryStore::new()),
            verifier,
            in_process_workers: true,
        }
    }

    /// The gateway's settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.state.config
    }
}
