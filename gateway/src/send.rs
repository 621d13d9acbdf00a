//! The send path, written once for every transport: the socket's `send` frame, `POST
//! /api/guilds/{id}/messages` and the Socket.IO `chat:message` event each parse their own
//! input into [`SendFields`] and call [`send`], which builds the router's [`SendRequest`] with
//! the identity the gateway verified, hands it to the router and maps the outcome to the ack
//! fields or the contract's error code. `chat_gateway_sends_total{outcome}` counts sends here,
//! and only sends.
//!
//! What stays with a transport: its framing (`ref`, ack callback, HTTP status), the socket's
//! per-connection flood control, and the order of one connection's sends.

use chat_shared::bus::{INTERNAL_VERSION, SendAck, SendRequest};
use chat_shared::protocol::{ErrorCode, SendFrame};
use tracing::Instrument;

use crate::http::auth::Caller;
use crate::metrics::Metrics;
use crate::state::AppState;

/// A send as any transport parsed it (the fields of a `send` frame without `type`/`ref`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendFields {
    pub guild_id: Option<String>,
    pub text: Option<String>,
    pub admin_only: bool,
    pub request_bot: bool,
    pub message_id: Option<String>,
}

impl SendFields {
    /// The fields of a socket `send` frame or an HTTP body; `guild_id` from the path wins.
    pub fn from_frame(frame: SendFrame, guild_id: Option<String>) -> Self {
        SendFields {
            guild_id: guild_id.or(frame.guild_id),
            text: frame.text,
            admin_only: frame.admin_only.unwrap_or(false),
            request_bot: frame.request_bot.unwrap_or(false),
            message_id: frame.message_id,
        }
    }
}

/// Sends as `caller`: the router's ack, or the error code to answer with.
pub async fn send(
    state: &AppState,
    caller: &Caller,
    fields: SendFields,
) -> Result<SendAck, ErrorCode> {
    hand_over(state, caller, fields).await.await
}

/// Hands a send to the router as `caller`: resolves once the send has its place in the
/// order of this gateway's sends (one handed over after it is stored after it), with the
/// router's answer still to come. A transport that keeps one connection's sends in order
/// hands them over one after another and awaits their answers together.
pub async fn hand_over(
    state: &AppState,
    caller: &Caller,
    fields: SendFields,
) -> impl Future<Output = Result<SendAck, ErrorCode>> + Send + 'static {
    // The per-user rate limit across every path and gateway (issue #14 item 1) belongs here,
    // before the request is built: `Err(ErrorCode::RateLimited)` through `answered` below.
    let request = request(caller, fields);
    let span = tracing::info_span!("send", guild = request.guild_id.as_deref().unwrap_or(""));
    let queued = state.bus.enqueue(request).instrument(span.clone()).await;
    let metrics = state.metrics.clone();
    async move {
        let outcome = match queued {
            Ok(answer) => answer.instrument(span).await,
            Err(error) => Err(error),
        };
        let outcome = outcome.unwrap_or_else(|error| {
            tracing::warn!(%error, "send failed on the bus");
            Err(ErrorCode::ServerError)
        });
        answered(&metrics, outcome)
    }
}

/// Counts a send's outcome (also for refusals a transport makes itself, e.g. flood control).
pub fn answered(
    metrics: &Metrics,
    outcome: Result<SendAck, ErrorCode>,
) -> Result<SendAck, ErrorCode> {
    let label = match &outcome {
        Ok(_) => "ack",
        Err(code) => code.as_str(),
    };
    Metrics::count(&metrics.sends, "outcome", label);
    outcome
}

/// The router's request: the verified sender, and whether the session store lists the guild
/// among theirs.
fn request(caller: &Caller, fields: SendFields) -> SendRequest {
    let member_verified = fields
        .guild_id
        .as_deref()
        .is_some_and(|g| caller.guilds.iter().any(|mine| mine == g));
    SendRequest {
        v: INTERNAL_VERSION,
        sender: caller.user.clone(),
        guild_id: fields.guild_id,
        text: fields.text,
        admin_only: fields.admin_only,
        request_bot: fields.request_bot,
        message_id: fields.message_id,
        member_verified,
    }
}

#[cfg(test)]
mod tests {
    use chat_shared::protocol::identity::{Role, UserInfo};

    use super::*;

    fn caller(guilds: &[&str]) -> Caller {
        Caller {
            user: UserInfo::new("u1", "Ann", Role::Member),
            guilds: guilds.iter().map(|g| g.to_string()).collect(),
            exp: 0,
        }
    }

    #[test]
    fn membership_is_verified_from_the_session_guilds() {
        let cases = [(Some("g1"), true), (Some("g2"), false), (None, false)];
        for (guild, verified) in cases {
            let fields = SendFields {
                guild_id: guild.map(str::to_owned),
                ..SendFields::default()
            };
            assert_eq!(
                request(&caller(&["g1"]), fields).member_verified,
                verified,
                "{guild:?}"
            );
        }
    }

    #[test]
    fn the_path_guild_wins_over_the_body() {
        let frame = SendFrame {
            guild_id: Some("body".into()),
            admin_only: Some(true),
            ..SendFrame::default()
        };
        let fields = SendFields::from_frame(frame, Some("path".into()));
        assert_eq!(fields.guild_id.as_deref(), Some("path"));
        assert!(fields.admin_only);
        assert!(!fields.request_bot);
    }
}
