//! `GET /ws`: refusals before the upgrade (the node's connection cap and handshake rate, then
//! origin, token, guilds, dependencies, encoding, and the user's connection cap), then
//! registration in the hub, `hello`, and the connection tasks. The connection slots admission
//! grants live as long as the connection task (or until the upgrade fails).

use std::collections::HashMap;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_shared::codec::Encoding;
use chat_shared::protocol::ErrorCode;
use futures::FutureExt;

use crate::admission::Refusal;
use crate::http::auth::{ApiError, Caller, authenticate};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::connection;
use crate::ws::handle::{ConnHandle, Outbound, QueueBounds};
use crate::ws::resume_param;

/// Bytes the socket layer reads at once per connection, allocated for as long as it is open:
/// small, because client frames are small and every idle connection keeps it; a larger frame
/// grows the buffer while it is read.
const READ_BUFFER: usize = 512;
/// Bytes of queued frames that trigger a write before the flush.
const WRITE_BUFFER: usize = 4096;

pub async fn ws_handler(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let node_slot = match state.admission.admit_to_node() {
        Ok(slot) => slot,
        Err(refusal) => return refused(&state, refusal),
    };
    // Held until this handler answers: the token, session and lease lookups below.
    let _handshake = match state.admission.begin_handshake() {
        Ok(slot) => slot,
        Err(refusal) => return refused(&state, refusal),
    };
    let checked = check(&state, &query, &headers).await;
    let positions = checked.and_then(|ok| {
        let positions = resume_param::parse(query.get("resume").map(String::as_str))
            .map_err(|_| ApiError::bad_request())?;
        Ok((ok, positions))
    });
    let ((caller, encoding), positions) = match positions {
        Ok(ok) => ok,
        Err(refusal) => {
            Metrics::count(
                &state.metrics.handshake_refusals,
                "reason",
                refusal.code.as_str(),
            );
            return refusal.into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
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
    if let Err(error) = state.hub.join(&handle, &caller.guilds).await {
        tracing::warn!(%error, "could not subscribe for a new connection");
        state.hub.leave(&handle, &caller.guilds, true);
        Metrics::count(
            &state.metrics.handshake_refusals,
            "reason",
            ErrorCode::Unavailable.as_str(),
        );
        return ApiError::unavailable().into_response();
    }
    let max = state.config.max_frame_bytes as usize;
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            // `map` keeps the connection's future inline (an async block would also keep the
            // socket it moved): the slots are released when the connection ends.
            connection::run(socket, state, caller, handle, outbound, opening)
                .map(move |()| drop((node_slot, user_slot)))
        })
}

/// Counts a refusal by admission under its reason and answers it.
fn refused(state: &AppState, refusal: Refusal) -> Response {
    Metrics::count(&state.metrics.handshake_refusals, "reason", refusal.reason);
    refusal.into_response()
}

/// The handshake checks, in order: origin, token, session, guild context, dependencies,
/// encoding.
async fn check(
    state: &AppState,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(Caller, Encoding), ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .map(|o| state.config.origin_allowed(o))
            .unwrap_or(false);
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::OriginNotAllowed,
            ));
        }
    }
    let caller = authenticate(state, headers).await?;
    if !caller.is_admin() && caller.guilds.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NoGuildContext,
        ));
    }
    if !state.health.dependencies_ok() {
        return Err(ApiError::unavailable());
    }
    let encoding = match query.get("encoding") {
        None => Encoding::Json,
        Some(value) => Encoding::parse(value).ok_or_else(ApiError::bad_request)?,
    };
    Ok((caller, encoding))
}
