//! `GET /ws`: refusals before the upgrade, cheapest first — not an upgrade, origin, token
//! signature, encoding (none of them spends the shared handshake budget), then the client
//! address's handshake rate, the user's handshake budget (`user_budget.rs`), the node's connection cap, handshake rate and handshakes in
//! flight, then guilds, dependencies, and the user's connection cap — then
//! registration in the hub, `hello`, and the connection tasks. The connection slots admission
//! grants live as long as the connection task (or until the upgrade fails).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chat_shared::auth::VerifiedToken;
use chat_shared::protocol::ErrorCode;
use chat_shared::protocol::codec::Encoding;
use futures::FutureExt;

use crate::admission::Refusal;
use crate::client_ip::client_ip;
use crate::http::auth::{ApiError, Caller, load_guilds, verify_token};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::user_budget::{self, Budget};
use crate::websocket::{self, Upgrade, UpgradeRejection, WebSocket};
use crate::ws::connection;
use crate::ws::handle::{ConnHandle, Outbound, QueueBounds};
use crate::ws::registration::Registration;
use crate::ws::resume_param;

pub async fn ws_handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<Upgrade, UpgradeRejection>,
) -> Response {
    // Cheap refusals first, spending none of the shared handshake budget: one host sending
    // garbage must not block everyone else's reconnects.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            Metrics::count(&state.metrics.handshake_refusals, "reason", "not_upgrade");
            return rejection.into_response();
        }
    };
    let (token, encoding) = match check(&state, &query, &headers) {
        Ok(ok) => ok,
        Err(refusal) => return refused_with(&state, refusal),
    };
    let positions = match resume_param::parse(query.get("resume").map(String::as_str)) {
        Ok(positions) => positions,
        Err(_) => return refused_with(&state, ApiError::bad_request()),
    };
    let ip = client_ip(
        peer.ip(),
        &headers,
        &state.config.connection_limits.trusted_proxies,
    );
    if let Err(refusal) = state.admission.admit_ip(ip).await {
        return refused(&state, refusal);
    }
    // The user's own handshake budget, before the node's shared one: one user's reconnect
    // loop spends only its own.
    if let Err(refusal) = user_budget::spend(&state, Budget::Handshake, &token.user.id).await {
        Metrics::count(&state.metrics.handshake_refusals, "reason", "user_rate");
        return refusal.into_response();
    }
    let node_slot = match state.admission.admit_to_node() {
        Ok(slot) => slot,
        Err(refusal) => return refused(&state, refusal),
    };
    // Held until this handler answers: the session and lease lookups below.
    let _handshake = match state.admission.begin_handshake() {
        Ok(slot) => slot,
        Err(refusal) => return refused(&state, refusal),
    };
    let caller = match load_caller(&state, token).await {
        Ok(caller) => caller,
        Err(refusal) => return refused_with(&state, refusal),
    };
    let user_slot = match state.admission.admit_user(&caller.user.id).await {
        Ok(slot) => slot,
        Err(refusal) => return refused(&state, refusal),
    };
    let id = state.next_connection_id();
    let bounds = QueueBounds {
        items: state.config.outbound_queue as usize,
        bytes: usize::try_from(state.config.outbound.outbound_queue_bytes).unwrap_or(usize::MAX),
    };
    let (handle, outbound) = ConnHandle::new(
        id,
        &caller.user.id,
        caller.is_admin(),
        encoding,
        bounds,
        caller.exp,
    );
    let hello = connection::hello_frame(&state, &caller, &handle);
    handle.try_send(Outbound::frame(hello));
    let opening = connection::open(&state, &caller, &handle, positions);
    let registration = Registration::new(state.hub.clone(), handle.clone(), caller.guilds.clone());
    if let Err(error) = state.hub.join(&handle, &caller.guilds).await {
        tracing::warn!(%error, "could not subscribe for a new connection");
        drop(registration);
        Metrics::count(
            &state.metrics.handshake_refusals,
            "reason",
            ErrorCode::Unavailable.as_str(),
        );
        return ApiError::unavailable().into_response();
    }
    let max = state.config.max_frame_bytes as usize;
    // tungstenite writes only our control frames (data frames go straight out, see
    // `crate::websocket`): each at once.
    let config = websocket::config(max, 0);
    let slots = (node_slot, user_slot);
    upgrade.on_upgrade(config, move |stream| {
        registration.hand_over();
        // `map` keeps the connection's future inline (an async block would also keep the
        // parts it moved): the slots are released when the connection ends.
        let socket = WebSocket::new(stream);
        connection::run(socket, state, caller, handle, outbound, opening).map(move |()| drop(slots))
    })
}

/// Counts a refusal by admission under its reason and answers it.
fn refused(state: &AppState, refusal: Refusal) -> Response {
    Metrics::count(&state.metrics.handshake_refusals, "reason", refusal.reason);
    refusal.into_response()
}

/// Counts a refusal by the handshake checks under its error code and answers it.
fn refused_with(state: &AppState, refusal: ApiError) -> Response {
    Metrics::count(
        &state.metrics.handshake_refusals,
        "reason",
        refusal.code.as_str(),
    );
    refusal.into_response()
}

/// The cheap handshake checks, in order, with no I/O: origin, token signature and expiry,
/// encoding.
fn check(
    state: &AppState,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(VerifiedToken, Encoding), ApiError> {
    if !crate::origin::request_allowed(&state.config.allowed_origins, headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::OriginNotAllowed,
        ));
    }
    let token = verify_token(state, headers)?;
    let encoding = match query.get("encoding") {
        None => Encoding::Json,
        Some(value) => Encoding::parse(value).ok_or_else(ApiError::bad_request)?,
    };
    Ok((token, encoding))
}

/// The checks that need the session store, within the handshake budget: the caller's guilds
/// (and guild context), then the dependencies.
async fn load_caller(state: &AppState, token: VerifiedToken) -> Result<Caller, ApiError> {
    let guilds = load_guilds(state, &token.user.id).await?;
    let caller = Caller {
        user: token.user,
        guilds,
        exp: token.exp,
    };
    if !caller.is_admin() && caller.guilds.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NoGuildContext,
        ));
    }
    if !state.dependencies_live().await {
        return Err(ApiError::unavailable());
    }
    Ok(caller)
}
