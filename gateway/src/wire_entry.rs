//! A log entry on its way to sockets, encoded at most once per encoding however many
//! connections receive it; each recipient gets a cheap clone of the same bytes. Also the
//! frames for one connection only ([`ControlFrame`]), which carry their type for the metrics.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chat_shared::bus::LogEntry;
use chat_shared::protocol::codec::{Encoding, encode};
use chat_shared::protocol::{ChatMessage, SequencedMessage, ServerFrame};
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;
use tungstenite::Utf8Bytes;

use crate::metrics::FrameType;
use crate::sequencer::Sequenced;
use crate::websocket::Data;

/// One entry and its lazily made wire frames.
#[derive(Debug)]
pub struct WireEntry {
    pub seq: u64,
    /// The seq of the guild's previous entry (any visibility).
    pub prev: u64,
    pub message: Arc<ChatMessage>,
    /// When the router appended it (its `ts`), for the delivery latency.
    pub appended_at: Option<SystemTime>,
    json: OnceLock<Utf8Bytes>,
    msgpack: OnceLock<Bytes>,
    socketio_head: OnceLock<Utf8Bytes>,
}

impl WireEntry {
    pub fn new(entry: LogEntry) -> Arc<Self> {
        Arc::new(WireEntry {
            seq: entry.seq,
            prev: entry.prev,
            appended_at: parse_ts(&entry.message.ts),
            message: entry.message,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
            socketio_head: OnceLock::new(),
        })
    }

    pub fn guild_id(&self) -> &str {
        &self.message.guild_id
    }

    /// The `message` frame in `encoding`, encoded on first use.
    pub fn frame(&self, encoding: Encoding) -> Data {
        match encoding {
            Encoding::Json => Data::Text(self.json.get_or_init(|| self.encode_json()).clone()),
            Encoding::MsgPack => {
                Data::Binary(self.msgpack.get_or_init(|| self.encode_msgpack()).clone())
            }
        }
    }

    /// The head of its Socket.IO emit (`crate::socketio::server_packet`), made by `encode` on
    /// first use and shared by every socket that gets it.
    pub fn socketio_head(&self, encode: impl FnOnce(&ChatMessage, u64) -> String) -> Utf8Bytes {
        self.socketio_head
            .get_or_init(|| encode(&self.message, self.seq).into())
            .clone()
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

impl Sequenced for Arc<WireEntry> {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev(&self) -> u64 {
        self.prev
    }
    fn guild_id(&self) -> &str {
        &self.message.guild_id
    }
    fn admin_only(&self) -> bool {
        self.message.admin_only
    }
}

/// The instant of a contract `ts` (`2026-11-26T23:00:00.000Z`), when it parses.
fn parse_ts(ts: &str) -> Option<SystemTime> {
    let at = OffsetDateTime::parse(ts, &Iso8601::DEFAULT).ok()?;
    let nanos = u64::try_from(at.unix_timestamp_nanos()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

/// A frame for one connection (ack, error, hello, …), encoded, with its type.
#[derive(Debug)]
pub struct ControlFrame {
    pub frame_type: FrameType,
    pub data: Data,
}

/// Encodes a control frame for one connection.
pub fn control_frame(frame: &ServerFrame, encoding: Encoding) -> ControlFrame {
    let data = match encoding {
        Encoding::Json => Data::Text(serde_json::to_string(frame).unwrap_or_default().into()),
        Encoding::MsgPack => Data::Binary(encode(frame, encoding).unwrap_or_default()),
    };
    ControlFrame {
        frame_type: FrameType::of(frame),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_ts() {
        let at = parse_ts("2026-11-26T23:00:00.500Z").expect("parses");
        let since_epoch = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch");
        assert_eq!(since_epoch.as_millis(), 1_795_734_000_500);
        assert_eq!(parse_ts("not a time"), None);
    }
}
