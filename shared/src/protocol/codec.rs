//! JSON and MessagePack codecs for frames. MessagePack uses named fields (maps), so both
//! encodings carry the same objects. Decoding never panics: anything that is not a valid frame
//! becomes a [`FrameError`] carrying the frame's `ref` when one could be read.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::{ClientFrame, ServerFrame};

/// The encoding chosen with `?encoding=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    #[default]
    Json,
    MsgPack,
}

impl Encoding {
    /// Parses the `encoding` query value.
    pub fn parse(value: &str) -> Option<Encoding> {
        match value {
            "json" => Some(Encoding::Json),
            "msgpack" => Some(Encoding::MsgPack),
            _ => None,
        }
    }

    /// Whether frames go in binary WebSocket messages.
    pub fn is_binary(self) -> bool {
        self == Encoding::MsgPack
    }
}

/// A client frame that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad frame: {reason}")]
pub struct FrameError {
    /// The `ref` of the frame, when it had a readable one.
    pub reference: Option<String>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("json encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("msgpack encoding failed: {0}")]
    MsgPack(#[from] rmp_serde::encode::Error),
}

/// Decodes a client frame. Invalid UTF-8, invalid syntax, a non-object, an unknown `type` and
/// a field of the wrong type are all errors.
pub fn decode_client_frame(bytes: &[u8], encoding: Encoding) -> Result<ClientFrame, FrameError> {
    let value: serde_json::Value = match encoding {
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| bad(None, e))?,
        Encoding::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| bad(None, e))?,
    };
    let reference = match &value {
        serde_json::Value::Object(map) => match map.get("ref") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(r)) => Some(r.clone()),
            Some(_) => return Err(bad(None, "`ref` must be a string")),
        },
        _ => return Err(bad(None, "a frame must be an object")),
    };
    serde_json::from_value(value).map_err(|e| bad(reference, e))
}

fn bad(reference: Option<String>, reason: impl std::fmt::Display) -> FrameError {
    FrameError {
        reference,
        reason: reason.to_string(),
    }
}

/// Encodes any serialisable value in the given encoding.
pub fn encode<T: Serialize>(value: &T, encoding: Encoding) -> Result<Bytes, EncodeError> {
    Ok(match encoding {
        Encoding::Json => Bytes::from(serde_json::to_vec(value)?),
        Encoding::MsgPack => Bytes::from(rmp_serde::to_vec_named(value)?),
    })
}

/// Encodes a server frame.
pub fn encode_server_frame(frame: &ServerFrame, encoding: Encoding) -> Result<Bytes, EncodeError> {
    encode(frame, encoding)
}

/// Decodes a server frame (clients: tests, the load generator).
pub fn decode_server_frame(bytes: &[u8], encoding: Encoding) -> Result<ServerFrame, FrameError> {
    decode_any(bytes, encoding)
}

/// Decodes any value in the given encoding.
pub fn decode_any<T: DeserializeOwned>(bytes: &[u8], encoding: Encoding) -> Result<T, FrameError> {
    match encoding {
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| bad(None, e)),
        Encoding::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| bad(None, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::identity::{Role, UserInfo};
    use crate::protocol::*;
    use std::sync::Arc;

    fn every_client_frame() -> Vec<ClientFrame> {
        vec![
            ClientFrame::Send(SendFrame {
                reference: Some("c1".into()),
                guild_id: Some("g1".into()),
                text: Some("hi".into()),
                admin_only: Some(false),
                request_bot: Some(true),
                message_id: Some("m-1".into()),
            }),
            ClientFrame::Send(SendFrame::default()),
            ClientFrame::Resume(ResumeFrame {
                positions: [("g1".to_string(), 42), ("g2".to_string(), 0)].into(),
            }),
            ClientFrame::Ping(PingFrame {
                reference: Some("p1".into()),
            }),
            ClientFrame::Refresh(RefreshFrame {
                reference: Some("t1".into()),
                token: "a.b.c".into(),
            }),
        ]
    }

    fn every_server_frame() -> Vec<ServerFrame> {
        let ann = UserInfo::new("u1", "Ann", Role::Member);
        vec![
            ServerFrame::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                connection_id: "c".into(),
                user: ann.clone(),
                guilds: vec!["g1".into()],
                admin: false,
                heartbeat_ms: 25_000,
                max_text_chars: 2000,
            }),
            ServerFrame::Message(SequencedMessage {
                seq: 43,
                message: Arc::new(ChatMessage {
                    guild_id: "g1".into(),
                    message_id: "m".into(),
                    admin_only: true,
                    from: ann,
                    text: "hi".into(),
                    ts: "2026-11-26T23:00:00.000Z".into(),
                }),
            }),
            ServerFrame::Ack(Ack {
                reference: Some("c1".into()),
                message_id: "m".into(),
                seq: 43,
            }),
            ServerFrame::Error(ErrorFrame::new(
                ErrorCode::ForbiddenGuild,
                Some("c1".into()),
            )),
            ServerFrame::Error(ErrorFrame {
                message_id: Some("m".into()),
                guild_id: Some("g1".into()),
                ..ErrorFrame::new(ErrorCode::BotUnavailable, None)
            }),
            ServerFrame::Resumed(Resumed {
                guild_id: "g1".into(),
                replayed: 3,
                gap: false,
            }),
            ServerFrame::Pong(Pong {
                reference: Some("p1".into()),
            }),
            ServerFrame::Refreshed(Refreshed {
                reference: Some("t1".into()),
                exp: 1_800_000_000,
            }),
        ]
    }

    #[test]
    fn every_frame_round_trips_in_both_encodings() {
        for enc in [Encoding::Json, Encoding::MsgPack] {
            for frame in every_client_frame() {
                let bytes = encode(&frame, enc).expect("encode");
                assert_eq!(decode_client_frame(&bytes, enc).expect("decode"), frame);
            }
            for frame in every_server_frame() {
                let bytes = encode_server_frame(&frame, enc).expect("encode");
                assert_eq!(decode_server_frame(&bytes, enc).expect("decode"), frame);
            }
        }
    }

    #[test]
    fn contract_json_shapes() {
        let f = decode_client_frame(
            br#"{"type":"send","ref":"c1","guildId":"g1","text":"hi","adminOnly":false,"requestBot":false}"#,
            Encoding::Json,
        )
        .expect("decode");
        assert_eq!(f.reference(), Some("c1"));
        let ack = serde_json::to_value(ServerFrame::Ack(Ack {
            reference: Some("c1".into()),
            message_id: "m".into(),
            seq: 1,
        }))
        .expect("json");
        assert_eq!(
            ack,
            serde_json::json!({"type":"ack","ref":"c1","messageId":"m","seq":1})
        );
    }

    #[test]
    fn bad_frames_keep_their_ref() {
        let cases: [(&[u8], Option<&str>); 6] = [
            (b"\xff\xfe", None),
            (b"{not json", None),
            (b"[1,2]", None),
            (br#"{"type":"dance","ref":"r1"}"#, Some("r1")),
            (br#"{"type":"send","ref":"r2","text":5}"#, Some("r2")),
            (br#"{"type":"ping","ref":7}"#, None),
        ];
        for (bytes, reference) in cases {
            let err = decode_client_frame(bytes, Encoding::Json).expect_err("must fail");
            assert_eq!(err.reference.as_deref(), reference, "{bytes:?}");
        }
        assert!(decode_client_frame(b"\xc1", Encoding::MsgPack).is_err());
    }
}
