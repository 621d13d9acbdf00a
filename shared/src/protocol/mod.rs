//! The wire contract of `/ws`: every frame a client may send, every frame the server sends,
//! the chat message itself, error codes and close codes. Names follow `DESIGN.md` exactly.

pub mod codec;
pub mod identity;
pub mod presence;
pub mod validate;

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::protocol::identity::{Role, UserInfo};

/// Protocol version announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A chat message as every viewer sees it (the `message` object of a `message` frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub guild_id: String,
    pub message_id: String,
    pub admin_only: bool,
    pub from: UserInfo,
    pub text: String,
    /// ISO-8601 UTC with milliseconds, e.g. `2026-11-26T23:00:00.000Z`.
    pub ts: String,
}

impl ChatMessage {
    /// Whether a viewer with this role may see the message at all (guild membership aside).
    pub fn visible_to(&self, role: Role) -> bool {
        !self.admin_only || role == Role::Admin
    }
}

/// A message with its position in the guild log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedMessage {
    pub seq: u64,
    pub message: Arc<ChatMessage>,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    Send(SendFrame),
    Resume(ResumeFrame),
    Ping(PingFrame),
    /// A fresh token for a live connection (an addition to the design; see docs/protocol.md).
    Refresh(RefreshFrame),
    /// Presence (issue #13): the client is writing in a guild; see [`crate::protocol::presence`].
    Typing(crate::protocol::presence::TypingFrame),
}

impl ClientFrame {
    /// The `ref` the client attached, echoed on the answer.
    pub fn reference(&self) -> Option<&str> {
        match self {
            ClientFrame::Send(f) => f.reference.as_deref(),
            ClientFrame::Resume(_) => None,
            ClientFrame::Ping(f) => f.reference.as_deref(),
            ClientFrame::Refresh(f) => f.reference.as_deref(),
            ClientFrame::Typing(_) => None,
        }
    }
}

/// `{"type":"send",...}`; also the body of `POST /api/guilds/{id}/messages` (without type/ref).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendFrame {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_bot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// `{"type":"resume","positions":{"g1":42}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeFrame {
    #[serde(default)]
    pub positions: std::collections::BTreeMap<String, u64>,
}

/// `{"type":"ping","ref":"p1"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingFrame {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// `{"type":"refresh","ref":"t1","token":"<jwt>"}`: replaces the connection's token before it
/// expires, so the connection is not closed with 4001.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFrame {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub token: String,
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    Hello(Hello),
    Message(SequencedMessage),
    Ack(Ack),
    Error(ErrorFrame),
    Resumed(Resumed),
    Pong(Pong),
    Refreshed(Refreshed),
    // Presence (issue #13): the frames are in [`crate::protocol::presence`].
    Presence(crate::protocol::presence::PresenceSnapshot),
    #[serde(rename = "presence_diff")]
    PresenceDiff(crate::protocol::presence::PresenceDiff),
    Typing(crate::protocol::presence::TypingNotice),
}

/// The answer to an accepted `refresh`: the new expiry (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refreshed {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub protocol: u32,
    pub connection_id: String,
    pub user: UserInfo,
    pub guilds: Vec<String>,
    pub admin: bool,
    pub heartbeat_ms: u64,
    pub max_text_chars: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub message_id: String,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFrame {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl ErrorFrame {
    /// An error answering the frame with `reference`, with the code's standard text.
    pub fn new(code: ErrorCode, reference: Option<String>) -> Self {
        ErrorFrame {
            reference,
            code,
            message: code.description().to_owned(),
            guild_id: None,
            message_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    pub guild_id: String,
    pub replayed: u64,
    pub gap: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Every error code of the contract, on frames and in HTTP bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    EmptyMessage,
    MissingGuild,
    ForbiddenGuild,
    AdminOnlyForbidden,
    MessageTooLong,
    DuplicateMessageId,
    RateLimited,
    ServerError,
    BadFrame,
    BotUnavailable,
    NotAuthorized,
    OriginNotAllowed,
    NoGuildContext,
    Unavailable,
    BadRequest,
    NotFound,
    TooManyConnections,
}

impl ErrorCode {
    /// Every code, for metrics and documentation.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::EmptyMessage,
        ErrorCode::MissingGuild,
        ErrorCode::ForbiddenGuild,
        ErrorCode::AdminOnlyForbidden,
        ErrorCode::MessageTooLong,
        ErrorCode::DuplicateMessageId,
        ErrorCode::RateLimited,
        ErrorCode::ServerError,
        ErrorCode::BadFrame,
        ErrorCode::BotUnavailable,
        ErrorCode::NotAuthorized,
        ErrorCode::OriginNotAllowed,
        ErrorCode::NoGuildContext,
        ErrorCode::Unavailable,
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::TooManyConnections,
    ];

    /// The wire name, e.g. `forbidden_guild`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MissingGuild => "missing_guild",
            ErrorCode::ForbiddenGuild => "forbidden_guild",
            ErrorCode::AdminOnlyForbidden => "admin_only_forbidden",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::DuplicateMessageId => "duplicate_message_id",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServerError => "server_error",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::BotUnavailable => "bot_unavailable",
            ErrorCode::NotAuthorized => "not_authorized",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::NoGuildContext => "no_guild_context",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooManyConnections => "too_many_connections",
        }
    }

    /// Human text for the `message` field of an error frame.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::EmptyMessage => "Message cannot be empty.",
            ErrorCode::MissingGuild => "Missing guild.",
            ErrorCode::ForbiddenGuild => "You do not have access to this guild.",
            ErrorCode::AdminOnlyForbidden => "Only admins can send admin-only messages.",
            ErrorCode::MessageTooLong => "Message is too long.",
            ErrorCode::DuplicateMessageId => "That messageId belongs to another message.",
            ErrorCode::RateLimited => "Too many requests; slow down.",
            ErrorCode::ServerError => "The server could not handle this request.",
            ErrorCode::BadFrame => "The frame could not be understood.",
            ErrorCode::BotUnavailable => "We couldn't reach slimy.ai right now. Try again shortly.",
            ErrorCode::NotAuthorized => "Missing, invalid or expired credentials.",
            ErrorCode::OriginNotAllowed => "This origin is not allowed.",
            ErrorCode::NoGuildContext => "You are not a member of any guild.",
            ErrorCode::Unavailable => "The service is temporarily unavailable.",
            ErrorCode::BadRequest => "The request is malformed.",
            ErrorCode::NotFound => "Not found.",
            ErrorCode::TooManyConnections => "Too many open connections for this user.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes of the contract.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    /// The peer broke the WebSocket protocol (RFC 6455 §7.4.1).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    pub const FRAME_TOO_BIG: u16 = 1009;
    pub const SERVER_RESTARTING: u16 = 1012;
    pub const SESSION_REVOKED: u16 = 4001;
    pub const POLICY_VIOLATION: u16 = 4008;
    pub const TOO_SLOW: u16 = 4009;
}
