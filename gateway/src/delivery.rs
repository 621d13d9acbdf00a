//! A log entry on its way to sockets, encoded at most once per encoding however many
//! connections receive it; each recipient gets a cheap clone of the same bytes.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use chat_shared::bus::LogEntry;
use chat_shared::codec::{Encoding, encode};
use chat_shared::protocol::{ChatMessage, SequencedMessage, ServerFrame};

/// One entry and its lazily made wire frames.
#[derive(Debug)]
pub struct Delivery {
    pub seq: u64,
    pub message: Arc<ChatMessage>,
    json: OnceLock<Utf8Bytes>,
    msgpack: OnceLock<Bytes>,
}

impl Delivery {
    pub fn new(entry: LogEntry) -> Arc<Self> {
        Arc::new(Delivery {
            seq: entry.seq,
            message: entry.message,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        })
    }

    pub fn guild_id(&self) -> &str {
        &self.message.guild_id
    }

    /// The `message` frame in `encoding`, encoded on first use.
    pub fn frame(&self, encoding: Encoding) -> Message {
        match encoding {
            Encoding::Json => Message::Text(self.json.get_or_init(|| self.encode_json()).clone()),
            Encoding::MsgPack => {
                Message::Binary(self.msgpack.get_or_init(|| self.encode_msgpack()).clone())
            }
        }
    }

    fn server_frame(&self) -> ServerFrame {
        ServerFrame::Message(SequencedMessage {
            seq: self.seq,
            message: self.message.clone(),
        })
    }

    fn encode_json(&self) -> Utf8Bytes {
        serde_json::to_string(&self.server_frame())
            .unwrap_or_default()
            .into()
    }

    fn encode_msgpack(&self) -> Bytes {
        encode(&self.server_frame(), Encoding::MsgPack).unwrap_or_default()
    }
}

/// Encodes a control frame (ack, error, hello, …) for one connection.
pub fn control_frame(frame: &ServerFrame, encoding: Encoding) -> Message {
    match encoding {
        Encoding::Json => Message::Text(serde_json::to_string(frame).unwrap_or_default().into()),
        Encoding::MsgPack => Message::Binary(encode(frame, encoding).unwrap_or_default()),
    }
}
