//! The JSON API: `/api/me`, a guild's messages (read pages, post), and the original system's
//! history path. Same authentication and visibility rules as the socket.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chat_shared::bus::{HistoryPage, Visibility};
use chat_shared::protocol::{ErrorCode, SendFrame, SequencedMessage};
use serde_json::json;

use crate::http::auth::{ApiError, Caller, authenticate, load_guilds, verify_token};
use crate::send::{SendFields, send};
use crate::state::AppState;
use crate::user_budget::{self, Budget};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers).await?;
    Ok(Json(json!({
        "user": caller.user,
        "guilds": caller.guilds,
        "admin": caller.is_admin(),
    }))
    .into_response())
}

/// `GET /api/guilds/{guildId}/messages?before=SEQ&limit=N`: newest first.
pub async fn list_messages(
    State(state): State<AppState>,
    Path(guild_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = match history_caller(&state, &headers, &guild_id).await? {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let limit = parse_limit(query.get("limit"), false)?;
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .ok()
                .filter(|b| *b >= 1)
                .ok_or_else(ApiError::bad_request)?,
        ),
    };
    let page = page(&state, &caller, &guild_id, before, limit).await?;
    let messages: Vec<SequencedMessage> = page
        .entries
        .into_iter()
        .map(|e| SequencedMessage {
            seq: e.seq,
            message: e.message,
        })
        .collect();
    let mut body = json!({ "messages": messages, "hasMore": page.more });
    // The `before` of the next page (issue #14 item 5): a page that stopped at the scan cap
    // may hold fewer than `limit` messages, even none, and still have more below.
    if let Some(next_before) = page.next_before {
        body["nextBefore"] = json!(next_before);
    }
    Ok(Json(body).into_response())
}

/// `GET /api/chat/{guildId}/history?limit=N`: the original system's shape, newest first.
pub async fn legacy_history(
    State(state): State<AppState>,
    Path(guild_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = match history_caller(&state, &headers, &guild_id).await? {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let limit = parse_limit(query.get("limit"), true)?;
    let page = page(&state, &caller, &guild_id, None, limit).await?;
    let messages: Vec<_> = page.entries.into_iter().map(|e| e.message).collect();
    Ok(Json(json!({ "ok": true, "messages": messages })).into_response())
}

/// `POST /api/guilds/{guildId}/messages`: the same path into the router as a socket send.
pub async fn post_message(
    State(state): State<AppState>,
    Path(guild_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<SendFrame>, JsonRejection>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state, &headers).await?;
    let Json(body) =
        body.map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadFrame))?;
    if let Err(refusal) =
        crate::send_limit::check(&state, &caller.user.id, body.request_bot == Some(true)).await
    {
        return Ok(refusal.into_response());
    }
    // The socket's send path, once (crate::send): the path's guild wins over the body's.
    match send(
        &state,
        &caller,
        SendFields::from_frame(body, Some(guild_id)),
    )
    .await
    {
        Ok(ack) => Ok((
            StatusCode::CREATED,
            Json(json!({ "messageId": ack.message_id, "seq": ack.seq })),
        )
            .into_response()),
        Err(code) => Err(ApiError::from_send_error(code)),
    }
}

/// A history request's caller: the token, then the user's history budget (before the session
/// lookup, so a refused flood costs no store read), then the guild check. `Ok(Err(429))` when
/// over budget.
async fn history_caller(
    state: &AppState,
    headers: &HeaderMap,
    guild_id: &str,
) -> Result<Result<Caller, Response>, ApiError> {
    let token = verify_token(state, headers)?;
    if let Err(refusal) = user_budget::spend(state, Budget::History, &token.user.id).await {
        return Ok(Err(refusal.into_response()));
    }
    let guilds = load_guilds(state, &token.user.id).await?;
    let caller = Caller {
        user: token.user,
        guilds,
        exp: token.exp,
    };
    if !caller.may_read(guild_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::ForbiddenGuild,
        ));
    }
    Ok(Ok(caller))
}

/// `limit`: default 50; 1–200, or clamped to 200 on the legacy path.
fn parse_limit(raw: Option<&String>, clamp: bool) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    let limit = raw
        .parse::<usize>()
        .ok()
        .filter(|l| *l >= 1)
        .ok_or_else(ApiError::bad_request)?;
    match (limit > MAX_LIMIT, clamp) {
        (false, _) => Ok(limit),
        (true, true) => Ok(MAX_LIMIT),
        (true, false) => Err(ApiError::bad_request()),
    }
}

async fn page(
    state: &AppState,
    caller: &Caller,
    guild_id: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<HistoryPage, ApiError> {
    let visibility = Visibility::for_admin(caller.is_admin());
    state
        .bus
        .read_history(guild_id, before, limit, visibility)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "history read failed");
            ApiError::unavailable()
        })
}
