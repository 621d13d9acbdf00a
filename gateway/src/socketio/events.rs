//! The Socket.IO events of the contract, pure: reading a `chat:message` a client emits, the
//! ack it gets (`{ok:true,messageId,seq}` or the original system's error text plus our code),
//! and the `chat:message` payloads the server emits (the original shape plus `seq`, and the
//! bot's `bot_unavailable` notice to the requester); presence and typing as events with the
//! `/ws` frames' payloads (without `type`): `presence`, `presence:diff`, `chat:typing`.

use chat_shared::protocol::identity::UserInfo;
use chat_shared::protocol::presence::TypingFrame;
use chat_shared::protocol::{ChatMessage, ErrorCode, ErrorFrame, SendFrame, ServerFrame};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The one event name of the contract, both ways.
pub const CHAT_MESSAGE: &str = "chat:message";

/// A guild's presence snapshot (server → client; `/ws`'s `presence` frame).
pub const PRESENCE: &str = "presence";
/// Users who came or went (server → client; `/ws`'s `presence_diff` frame).
pub const PRESENCE_DIFF: &str = "presence:diff";
/// A member is writing: `{guildId}` client → server, `{guildId, user}` server → client.
pub const CHAT_TYPING: &str = "chat:typing";

/// The guild a `chat:typing` names, or the code of what is wrong with it.
pub fn read_typing(args: &[Value]) -> Result<TypingFrame, ErrorCode> {
    let Some(payload @ Value::Object(_)) = args.first() else {
        return Err(ErrorCode::BadFrame);
    };
    serde_json::from_value::<TypingFrame>(payload.clone()).map_err(|_| ErrorCode::BadFrame)
}

/// The event a presence or typing frame of the connection becomes (name, payload); `None` for
/// frames with no Socket.IO form.
pub fn presence_event(frame: &ServerFrame) -> Option<(&'static str, Value)> {
    let (name, payload) = match frame {
        ServerFrame::Presence(snapshot) => (PRESENCE, serde_json::to_value(snapshot)),
        ServerFrame::PresenceDiff(diff) => (PRESENCE_DIFF, serde_json::to_value(diff)),
        ServerFrame::Typing(notice) => (CHAT_TYPING, serde_json::to_value(notice)),
        _ => return None,
    };
    payload.ok().map(|payload| (name, payload))
}

/// The ack of an accepted (or throttled) `chat:typing`.
pub fn ack_typing() -> Value {
    json!({ "ok": true })
}

/// The send a `chat:message` asks for, or the code of what is wrong with it.
pub fn read_send(args: &[Value]) -> Result<SendFrame, ErrorCode> {
    let Some(payload @ Value::Object(_)) = args.first() else {
        return Err(ErrorCode::BadFrame);
    };
    serde_json::from_value::<SendFrame>(payload.clone()).map_err(|_| ErrorCode::BadFrame)
}

/// The ack of an accepted send.
pub fn ack_ok(message_id: &str, seq: u64) -> Value {
    json!({ "ok": true, "messageId": message_id, "seq": seq })
}

/// The ack of a refused send: the original system's text, and our code.
pub fn ack_error(code: ErrorCode) -> Value {
    json!({ "error": original_text(code), "code": code })
}

/// What the original system answered for this refusal.
pub fn original_text(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::EmptyMessage => "Message cannot be empty.",
        ErrorCode::MissingGuild => "Missing guild.",
        ErrorCode::ForbiddenGuild => "You do not have access to this guild.",
        ErrorCode::AdminOnlyForbidden => "Only admins can send admin-only messages.",
        other => other.as_str(),
    }
}

/// A delivered message: `{guildId, messageId, adminOnly, from, text, ts, seq}`.
pub fn message_payload(message: &ChatMessage, seq: u64) -> Value {
    json!({
        "guildId": message.guild_id,
        "messageId": message.message_id,
        "adminOnly": message.admin_only,
        "from": message.from,
        "text": message.text,
        "ts": message.ts,
        "seq": seq,
    })
}

/// The head of a delivered message's Engine.IO packet, `42["chat:message",{…}`: the same for
/// every socket that gets the entry, so it is made once per entry ([`message_tail`] ends it).
pub fn message_head(message: &ChatMessage, seq: u64) -> String {
    format!(
        "42[{},{}",
        Value::from(CHAT_MESSAGE),
        message_payload(message, seq)
    )
}

/// The end of a delivered message's packet after [`message_head`]: the socket's recovery
/// offset as the last argument, then `]`.
pub fn message_tail(offset: &str) -> String {
    format!(",{}]", Value::from(offset))
}

/// The requester's `bot_unavailable` notice, as the original showed it: a message from the
/// bot with `error`, for the request's guild and id.
pub fn bot_unavailable_payload(frame: &ErrorFrame, admin_only: bool) -> Value {
    let request_id = frame.message_id.clone().unwrap_or_default();
    json!({
        "guildId": frame.guild_id.clone().unwrap_or_default(),
        "messageId": format!("{request_id}-bot"),
        "adminOnly": admin_only,
        "from": UserInfo::bot(),
        "text": frame.message,
        "ts": now_ts(),
        "error": ErrorCode::BotUnavailable,
    })
}

/// Now as a contract `ts`, with milliseconds.
fn now_ts() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map(|s| trim_to_millis(&s))
        .unwrap_or_default()
}

/// `2026-11-26T23:00:00.123456789Z` → `2026-11-26T23:00:00.123Z`.
fn trim_to_millis(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((head, tail)) => {
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            format!("{head}.{:0<3}Z", &digits[..digits.len().min(3)])
        }
        None => rfc3339.replace('Z', ".000Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::protocol::identity::Role;

    #[test]
    fn a_message_packet_is_its_shared_head_then_the_sockets_offset() {
        let message = ChatMessage {
            guild_id: "g\"1".into(),
            message_id: "m1".into(),
            admin_only: false,
            from: UserInfo::bot(),
            text: "a \"quoted\" \\ text\n".into(),
            ts: "2026-12-02T00:00:00.000Z".into(),
        };
        for offset in ["", "{\"g\\\"1\":7}", "{\"a\":1,\"b\":2}"] {
            let whole = crate::socketio::packet::encode_event(
                CHAT_MESSAGE,
                &[&message_payload(&message, 7), &Value::from(offset)],
            );
            let packet = format!("{}{}", message_head(&message, 7), message_tail(offset));
            assert_eq!(packet, format!("4{whole}"), "{offset}");
            let decoded = crate::socketio::packet::decode_sio(&packet[1..]);
            assert!(decoded.is_ok(), "{packet}");
        }
    }

    #[test]
    fn sends_are_read_from_an_object_only() {
        let ok = read_send(&[json!({"guildId":"g1","text":"hi","requestBot":true})]);
        let frame = ok.expect("valid");
        assert_eq!(frame.guild_id.as_deref(), Some("g1"));
        assert_eq!(frame.request_bot, Some(true));
        let table = [
            vec![],
            vec![json!("text")],
            vec![json!(["g1"])],
            vec![json!(null)],
            vec![json!({"text": 5})],
            vec![json!({"adminOnly": "yes"})],
        ];
        for args in table {
            assert_eq!(read_send(&args), Err(ErrorCode::BadFrame), "{args:?}");
        }
    }

    #[test]
    fn typing_is_read_from_an_object_only() {
        let frame = read_typing(&[json!({"guildId": "g1"})]).expect("valid");
        assert_eq!(frame.guild_id.as_deref(), Some("g1"));
        assert_eq!(read_typing(&[json!({})]).map(|f| f.guild_id), Ok(None));
        for args in [vec![], vec![json!("g1")], vec![json!({"guildId": 1})]] {
            assert_eq!(read_typing(&args), Err(ErrorCode::BadFrame), "{args:?}");
        }
    }

    #[test]
    fn presence_frames_become_events_without_type() {
        use chat_shared::protocol::presence::{PresenceDiff, PresenceSnapshot, TypingNotice};
        let ann = UserInfo::new("u1", "Ann", Role::Member);
        let table = [
            (
                ServerFrame::Presence(PresenceSnapshot {
                    guild_id: "g1".into(),
                    count: 1,
                    truncated: false,
                    available: true,
                    online: vec![std::sync::Arc::new(ann.clone())],
                }),
                "presence",
                json!({"guildId":"g1","count":1,"truncated":false,"available":true,
                       "online":[{"id":"u1","name":"Ann","role":"member","color":"#3b82f6"}]}),
            ),
            (
                ServerFrame::PresenceDiff(PresenceDiff {
                    guild_id: "g1".into(),
                    count: 0,
                    joined: vec![],
                    left: vec!["u1".into()],
                }),
                "presence:diff",
                json!({"guildId":"g1","count":0,"joined":[],"left":["u1"]}),
            ),
            (
                ServerFrame::Typing(TypingNotice {
                    guild_id: "g1".into(),
                    user: ann,
                }),
                "chat:typing",
                json!({"guildId":"g1","user":{"id":"u1","name":"Ann","role":"member","color":"#3b82f6"}}),
            ),
        ];
        for (frame, name, payload) in table {
            assert_eq!(presence_event(&frame), Some((name, payload)));
        }
        let error = ServerFrame::Error(ErrorFrame::new(ErrorCode::BadFrame, None));
        assert_eq!(presence_event(&error), None);
    }

    #[test]
    fn acks_carry_the_original_strings() {
        let table = [
            (ErrorCode::EmptyMessage, "Message cannot be empty."),
            (ErrorCode::MissingGuild, "Missing guild."),
            (
                ErrorCode::ForbiddenGuild,
                "You do not have access to this guild.",
            ),
            (
                ErrorCode::AdminOnlyForbidden,
                "Only admins can send admin-only messages.",
            ),
            (ErrorCode::RateLimited, "rate_limited"),
            (ErrorCode::ServerError, "server_error"),
            (ErrorCode::MessageTooLong, "message_too_long"),
        ];
        for (code, text) in table {
            assert_eq!(
                ack_error(code),
                json!({"error": text, "code": code.as_str()})
            );
        }
        assert_eq!(ack_ok("m1", 4), json!({"ok":true,"messageId":"m1","seq":4}));
    }

    #[test]
    fn messages_keep_the_original_shape_plus_seq() {
        let message = ChatMessage {
            guild_id: "g1".into(),
            message_id: "m1".into(),
            admin_only: false,
            from: UserInfo::new("u1", "Ann", Role::Member),
            text: "hi".into(),
            ts: "2026-11-26T23:00:00.000Z".into(),
        };
        let payload = message_payload(&message, 9);
        assert_eq!(payload["from"]["color"], "#3b82f6");
        assert_eq!(payload["seq"], 9);
        assert_eq!(payload["guildId"], "g1");
    }

    #[test]
    fn the_bot_notice_is_a_bot_message_with_error() {
        let frame = ErrorFrame {
            guild_id: Some("g1".into()),
            message_id: Some("m1".into()),
            ..ErrorFrame::new(ErrorCode::BotUnavailable, None)
        };
        let payload = bot_unavailable_payload(&frame, false);
        assert_eq!(payload["error"], "bot_unavailable");
        assert_eq!(
            payload["text"],
            "We couldn't reach slimy.ai right now. Try again shortly."
        );
        assert_eq!(payload["from"]["id"], "bot");
        assert_eq!(payload["messageId"], "m1-bot");
        assert!(
            payload["ts"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 24)
        );
    }

    #[test]
    fn timestamps_are_trimmed_to_millis() {
        assert_eq!(
            trim_to_millis("2026-01-01T00:00:00.123456Z"),
            "2026-01-01T00:00:00.123Z"
        );
        assert_eq!(
            trim_to_millis("2026-01-01T00:00:00.5Z"),
            "2026-01-01T00:00:00.500Z"
        );
        assert_eq!(
            trim_to_millis("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:00.000Z"
        );
    }
}
