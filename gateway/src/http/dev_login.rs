//! `POST /api/dev/login`: creates or replaces a user's session and sets the token cookie.
//! Only mounted when dev login is enabled (on by default only in embedded mode with a generated
//! secret; see `GatewayConfig::dev_login_enabled`).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_shared::bus::UserEvent;
use chat_shared::protocol::identity::{Role, UserInfo};
use chat_shared::protocol::validate::is_valid_guild_id;
use chat_shared::store::{GuildRef, Session};
use serde::Deserialize;
use serde_json::json;

use crate::http::auth::ApiError;
use crate::state::AppState;

/// Lifetime of a dev-login token (the original system's 12 h).
const TOKEN_TTL_SECS: u64 = 12 * 3600;
/// The same, as a duration.
pub const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(TOKEN_TTL_SECS);
const MAX_GUILDS: usize = 100;
const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevLogin {
    id: Option<String>,
    name: String,
    role: String,
    #[serde(default)]
    guilds: Vec<String>,
}

pub async fn dev_login(
    State(state): State<AppState>,
    body: Result<Json<DevLogin>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|_| ApiError::bad_request())?;
    let user = checked_user(&body)?;
    // Minted first: a gateway that cannot mint must not have rewritten anyone's session.
    let token = state.verifier.mint(&user, TOKEN_TTL_SECS).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            chat_shared::protocol::ErrorCode::ServerError,
        )
    })?;
    let session = Session {
        guilds: body
            .guilds
            .iter()
            .map(|id| GuildRef {
                id: id.clone(),
                name: Some(id.clone()),
            })
            .collect(),
        extra: Default::default(),
    };
    state
        .store
        .put(&user.id, &session)
        .await
        .map_err(|_| ApiError::unavailable())?;
    for evicted in state.dev_sessions.record(&user.id) {
        if let Err(error) = state.store.delete(&evicted).await {
            tracing::warn!(%error, user = %evicted, "old dev-login session not deleted");
        }
    }
    if let Err(error) = state
        .bus
        .publish_user_event(&user.id, UserEvent::GuildsChanged)
        .await
    {
        tracing::warn!(%error, "could not announce the new guilds");
    }
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={TOKEN_TTL_SECS}",
        state.config.auth.jwt_cookie_name
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "token": token, "user": user })),
    )
        .into_response())
}

fn checked_user(body: &DevLogin) -> Result<UserInfo, ApiError> {
    let name = body.name.trim();
    let role = match body.role.as_str() {
        "member" => Role::Member,
        "club" => Role::Club,
        "admin" => Role::Admin,
        _ => return Err(ApiError::bad_request()),
    };
    let id = match &body.id {
        Some(id) if is_valid_guild_id(id) && id != chat_shared::protocol::identity::BOT_USER_ID => {
            id.clone()
        }
        Some(_) => return Err(ApiError::bad_request()),
        None => format!("u-{}", ulid::Ulid::new()),
    };
    let guilds_ok =
        body.guilds.len() <= MAX_GUILDS && body.guilds.iter().all(|g| is_valid_guild_id(g));
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !guilds_ok {
        return Err(ApiError::bad_request());
    }
    Ok(UserInfo::new(id, name, role))
}
