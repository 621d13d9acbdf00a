//! The gateway as a library: the HTTP/WebSocket routes ([`app`]), and [`Node`], which wires a
//! bus, a session store and a verifier into a running server — with the router and bot
//! workers in-process in embedded mode.

pub mod admission;
pub mod client_ip;
pub mod config;
pub mod distributed;
pub mod embedded;
pub mod http;
pub mod hub;
pub mod in_flight;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod ops_listener;
pub mod origin;
pub mod outbound;
pub mod presence;
pub mod rate;
pub mod revocation;
pub mod send;
pub mod send_limit;
pub mod sequencer;
pub mod server;
pub mod shared_frame;
pub mod socketio;
pub mod state;
pub mod user_budget;
pub mod websocket;
pub mod wire_entry;
pub mod ws;

pub use config::GatewayConfig;
pub use node::{Deps, Node};

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Every route of the gateway's public port (`/metrics` is on the ops listener only:
/// [`ops_listener::app`]).
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/", get(http::assets::index))
        .route("/static/app.js", get(http::assets::app_js))
        .route("/static/style.css", get(http::assets::style_css))
        .route("/client/chat-client.js", get(http::assets::client_js))
        .route("/client/wire.js", get(http::assets::wire_js))
        .route("/client/presence.js", get(http::assets::presence_js))
        .route(
            "/static/presence-view.js",
            get(http::assets::presence_view_js),
        )
        .route("/ws", get(ws::upgrade::ws_handler))
        .route("/healthz", get(http::ops::healthz))
        .route("/readyz", get(http::ops::readyz))
        .route("/api/me", get(http::api::me))
        .route(
            "/api/guilds/{guild_id}/messages",
            get(http::api::list_messages).post(http::api::post_message),
        )
        // Presence (issue #13).
        .route(
            "/api/guilds/{guild_id}/presence",
            get(http::presence::guild_presence),
        )
        .route(
            "/api/chat/{guild_id}/history",
            get(http::api::legacy_history),
        );
    if state.config.dev_login_enabled() {
        router = router.route("/api/dev/login", post(http::dev_login::dev_login));
    }
    router
        .fallback(|| async {
            http::auth::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                chat_shared::protocol::ErrorCode::NotFound,
            )
        })
        .with_state(state.clone())
        .merge(socketio::router(state))
        .layer(axum::middleware::map_response(http::security_headers::add))
}
