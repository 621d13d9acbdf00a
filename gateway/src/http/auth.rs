//! Who is asking: the token from the cookie or `Authorization: Bearer`, verified, and the
//! user's guilds from the session store. Shared by `/ws` and the HTTP API; a refusal carries
//! the contract's status and error code.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_shared::auth::VerifiedToken;
use chat_shared::protocol::ErrorCode;
use chat_shared::protocol::identity::UserInfo;
use serde_json::json;

use crate::state::AppState;

/// A refused request: HTTP status and `{"error": code}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode) -> Self {
        ApiError { status, code }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::NotAuthorized)
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
    }

    pub fn bad_request() -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest)
    }

    /// The status for an error code returned by the router.
    pub fn from_send_error(code: ErrorCode) -> Self {
        let status = match code {
            ErrorCode::ForbiddenGuild | ErrorCode::AdminOnlyForbidden => StatusCode::FORBIDDEN,
            ErrorCode::DuplicateMessageId => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.code }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserInfo,
    pub guilds: Vec<String>,
    /// Token expiry, seconds since the Unix epoch.
    pub exp: u64,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.is_admin()
    }

    /// Whether the caller may read (and post to) a guild: members, and admins everywhere.
    pub fn may_read(&self, guild_id: &str) -> bool {
        self.is_admin() || self.guilds.iter().any(|g| g == guild_id)
    }
}

/// The token a request carries: the `JWT_COOKIE_NAME` cookie, then `Authorization: Bearer`.
pub fn request_token<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    chat_shared::auth::extract_token(cookies, authorization, &state.config.auth.jwt_cookie_name)
}

/// Verifies the token of a request.
pub fn verify_token(state: &AppState, headers: &HeaderMap) -> Result<VerifiedToken, ApiError> {
    let token = request_token(state, headers).ok_or_else(ApiError::unauthorized)?;
    state.verifier.verify(token).map_err(|error| {
        tracing::debug!(%error, "token refused");
        ApiError::unauthorized()
    })
}

/// Verifies the token and loads the caller's guilds.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = verify_token(state, headers)?;
    let guilds = load_guilds(state, &token.user.id).await?;
    Ok(Caller {
        user: token.user,
        guilds,
        exp: token.exp,
    })
}

/// The user's guild ids from the session store (none without a session).
pub async fn load_guilds(state: &AppState, user_id: &str) -> Result<Vec<String>, ApiError> {
    match state.store.get(user_id).await {
        Ok(Some(session)) => Ok(session.guild_ids()),
        Ok(None) => Ok(Vec::new()),
        Err(error) => {
            tracing::warn!(%error, "session store unavailable");
            Err(ApiError::unavailable())
        }
    }
}
