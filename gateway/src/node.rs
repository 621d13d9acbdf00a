//! A running gateway: the listener, the background tasks (health probe, user events, embedded
//! workers), and the graceful drain a rolling update relies on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_shared::auth::JwtVerifier;
use chat_shared::bus::Bus;
use chat_shared::protocol::close_code;
use chat_shared::store::SessionStore;
use chat_shared::store::rate_limit::RateLimiter;
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
    /// Where per-user send limits are counted (Redis in distributed mode, memory embedded).
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Run the router and a bot worker in this process (embedded mode).
    pub in_process_workers: bool,
}

/// A started gateway.
pub struct Node {
    pub state: AppState,
    pub addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`OPS_LISTEN_ADDR`).
    pub ops_addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    ops_server: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Node {
    /// Binds `config.listen_addr` and the ops listener, and serves until [`Node::shutdown`].
    pub async fn start(config: GatewayConfig, deps: Deps) -> std::io::Result<Node> {
        let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
        let addr = listener.local_addr()?;
        let ops_listener = crate::ops_listener::bind(config.ops_listen_addr).await?;
        let ops_addr = ops_listener.local_addr()?;
        let stop = CancellationToken::new();
        let max_text = config.limits.max_text_chars as usize;
        let bot_args = config.bot.clone();
        let state = AppState::new(
            config,
            deps.verifier,
            deps.bus.clone(),
            deps.store,
            deps.rate_limiter,
        );
        let mut background = vec![
            tokio::spawn(state.clone().run_health_probe(stop.clone())),
            tokio::spawn(state.hub.clone().run_user_events(stop.clone())),
            tokio::spawn(state.admission.clone().run_lease_renewal(stop.clone())),
            tokio::spawn(crate::revocation::run(
                state.clone(),
                Duration::from_millis(state.config.session_recheck_ms),
                crate::revocation::watch(&state).await,
                stop.clone(),
            )),
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
        let app = crate::app(state.clone());
        let header_read_timeout = Duration::from_millis(state.config.header_read_timeout_ms);
        let server = tokio::spawn(crate::server::serve(
            listener,
            app,
            header_read_timeout,
            stop.clone(),
        ));
        let ops_server = tokio::spawn(crate::server::serve(
            ops_listener,
            crate::ops_listener::app(state.clone()),
            header_read_timeout,
            stop.clone(),
        ));
        Ok(Node {
            state,
            addr,
            ops_addr,
            stop,
            server,
            ops_server,
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
        for server in [self.server, self.ops_server] {
            if let Ok(Err(error)) = server.await {
                tracing::warn!(%error, "server ended with an error");
            }
        }
        for task in self.background {
            let _ = task.await;
        }
    }

    /// Convenience for embedded mode and tests: in-memory bus and store.
    pub fn embedded_deps(verifier: JwtVerifier) -> Deps {
        Deps {
            bus: chat_shared::bus::MemoryBus::new(Default::default()),
            store: Arc::new(chat_shared::store::MemoryStore::new()),
            verifier,
            rate_limiter: Arc::new(chat_shared::store::rate_limit::MemoryRateLimiter::new()),
            in_process_workers: true,
        }
    }
}
