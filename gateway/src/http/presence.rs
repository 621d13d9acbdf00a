//! `GET /api/guilds/{guildId}/presence` (issue #13): who is online in a guild, for its members
//! only (guild membership, not the admin rule) — `{"count","online","truncated","available"}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chat_shared::protocol::ErrorCode;
use chat_shared::protocol::presence::PresenceBody;

use crate::http::auth::{ApiError, authenticate};
use crate::state::AppState;

pub async fn guild_presence(
    State(state): State<AppState>,
    Path(guild_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PresenceBody>, ApiError> {
    let caller = authenticate(&state, &headers).await?;
    if !caller.guilds.contains(&guild_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::ForbiddenGuild,
        ));
    }
    Ok(Json(state.presence.read(&guild_id).await.into()))
}
