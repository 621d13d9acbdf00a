//! The Socket.IO v4 endpoint at `/socket.io/` (Engine.IO v4 + Socket.IO v5, JSON packets,
//! default namespace), for existing `socket.io-client` apps: framing ([`packet`]), sessions
//! and transports ([`engine`], [`http`], [`websocket`], [`carrier`]), one socket's loop
//! ([`session`], [`timers`]) and protocol ([`socket`]), the contract's events ([`events`]),
//! stateless connection state recovery ([`recovery`]), the packets it writes
//! ([`server_packet`]), and the one adapter onto the gateway's
//! connection core ([`bridge`]). A WebSocket session is one task; a polling session is its
//! socket's task plus its heartbeat. See `docs/socketio.md`.

pub mod bridge;
pub mod carrier;
pub mod engine;
pub mod events;
pub mod http;
mod metrics;
pub mod packet;
pub mod recovery;
pub mod server_packet;
pub mod session;
pub mod socket;
pub mod timers;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::routing::any;
use clap::Args;

use crate::socketio::engine::{Engine, EngineSettings};
use crate::socketio::metrics::SioMetrics;
use crate::socketio::recovery::PidKey;
use crate::state::AppState;

/// The `--help` heading of these settings.
const HEADING: &str = "Socket.IO endpoint";

/// Settings of the Socket.IO endpoint.
#[derive(Debug, Clone, Args)]
pub struct SocketIoArgs {
    /// How long a disconnected socket.io client may recover missed messages (on any gateway):
    /// the oldest message it missed may be at most this old.
    #[arg(long, env = "SOCKETIO_RECOVERY_SECS", help_heading = HEADING, default_value_t = 120)]
    pub socketio_recovery_secs: u64,
    /// Secret that signs recovery ids, the same on every gateway (default: derived from
    /// JWT_SECRET; without either, recovery works on the same gateway only).
    #[arg(long, env = "SOCKETIO_PID_SECRET", help_heading = HEADING, hide_env_values = true)]
    pub socketio_pid_secret: Option<String>,
}

/// What every `/socket.io/` request shares.
pub struct SocketIo {
    pub state: AppState,
    pub engine: Arc<Engine>,
    pub pid_key: PidKey,
    pub recovery_window: Duration,
    metrics: SioMetrics,
}

impl SocketIo {
    pub fn new(state: AppState) -> Arc<Self> {
        let config = &state.config;
        let heartbeat = config.heartbeat();
        let metrics = state.metrics.register_with(SioMetrics::register);
        let engine = Engine::new(
            EngineSettings {
                ping_interval: heartbeat,
                // Silent for two intervals closes it, as on /ws.
                ping_timeout: heartbeat,
                max_payload: config.max_frame_bytes as usize,
            },
            metrics.sessions.clone(),
        );
        let secret = config
            .socketio
            .socketio_pid_secret
            .as_deref()
            .or(config.auth.jwt_secret.as_deref());
        let pid_key = secret.map_or_else(PidKey::random, |s| PidKey::from_secret(s.as_bytes()));
        let recovery_window = Duration::from_secs(config.socketio.socketio_recovery_secs);
        Arc::new(SocketIo {
            state,
            engine,
            pid_key,
            recovery_window,
            metrics,
        })
    }

    /// The Origin rule of `/ws` (same-origin unless `ALLOWED_ORIGINS` says otherwise):
    /// requests without Origin pass.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        crate::origin::request_allowed(&self.state.config.allowed_origins, headers)
    }

    /// Cross-origin polling with credentials (the admin UI's `withCredentials: true`) needs the
    /// allowed origin echoed.
    fn add_cors(&self, request: &HeaderMap, response: &mut HeaderMap) {
        let Some(origin) = request.get(header::ORIGIN) else {
            return;
        };
        if !self.origin_allowed(request) {
            return;
        }
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        response.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        response.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
    }
}

/// The `/socket.io/` routes, with their own state.
pub fn router(state: AppState) -> Router {
    let io = SocketIo::new(state);
    Router::new()
        .route("/socket.io/", any(http::handle))
        .route("/socket.io", any(http::handle))
        .with_state(io)
}
