//! A frame for many connections at once (presence snapshots, diffs, typing notices): made once,
//! shared by every recipient's queue behind an `Arc`, and encoded at most once per encoding
//! however many connections write it, as [`crate::wire_entry::WireEntry`] does for messages.
//! The JSON encoding is made up front: its length is what a queued copy is taken to cost.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::codec::{Encoding, encode};

use chat_shared::protocol::identity::UserInfo;
use tungstenite::Utf8Bytes;

use crate::metrics::FrameType;
use crate::presence::listing::with_viewer;
use crate::websocket::Data;

#[derive(Debug)]
pub struct SharedFrame {
    frame: ServerFrame,
    json: Utf8Bytes,
    msgpack: OnceLock<Bytes>,
}

impl SharedFrame {
    pub fn new(frame: ServerFrame) -> Self {
        let mut json = serde_json::to_string(&frame).unwrap_or_default();
        // Kept as long as the frame is (a guild's snapshot): without the growth's slack.
        json.shrink_to_fit();
        let json = json.into();
        SharedFrame {
            frame,
            json,
            msgpack: OnceLock::new(),
        }
    }

    /// The frame itself (for transports that re-shape it, such as Socket.IO events).
    pub fn frame(&self) -> &ServerFrame {
        &self.frame
    }

    pub fn frame_type(&self) -> FrameType {
        FrameType::of(&self.frame)
    }

    /// The bytes of its JSON encoding (what a queued copy pins, at most).
    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// The WebSocket data frame in `encoding`; a cheap clone of bytes encoded once.
    pub fn data(&self, encoding: Encoding) -> Data {
        match encoding {
            Encoding::Json => Data::Text(self.json.clone()),
            Encoding::MsgPack => Data::Binary(
                self.msgpack
                    .get_or_init(|| encode(&self.frame, Encoding::MsgPack).unwrap_or_default())
                    .clone(),
            ),
        }
    }
}

/// A guild's shared presence snapshot for a viewer its sample does not list: the connection
/// makes the frame with its user added (`presence::listing`), in its own task, so the presence
/// service's lock only pays for two clones of pointers and one user.
#[derive(Debug)]
pub struct ViewerSnapshot {
    pub shared: Arc<SharedFrame>,
    pub viewer: UserInfo,
}

impl ViewerSnapshot {
    pub fn frame(&self) -> ServerFrame {
        let mut frame = self.shared.frame().clone();
        if let ServerFrame::Presence(snapshot) = &mut frame {
            snapshot.online = with_viewer(std::mem::take(&mut snapshot.online), Some(&self.viewer));
            snapshot.truncated = snapshot.count > snapshot.online.len() as u64;
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use chat_shared::protocol::identity::{Role, UserInfo};
    use chat_shared::protocol::presence::PresenceDiff;

    use super::*;
    use crate::wire_entry::control_frame;

    #[test]
    fn encodes_as_a_frame_for_one_connection_does() {
        let frame = ServerFrame::PresenceDiff(PresenceDiff {
            guild_id: "g1".into(),
            count: 2,
            joined: vec![UserInfo {
                id: "u1".into(),
                name: "Ann".into(),
                role: Role::Member,
                color: "#3b82f6".into(),
            }],
            left: vec!["u2".into()],
        });
        let shared = SharedFrame::new(frame.clone());
        for encoding in [Encoding::Json, Encoding::MsgPack] {
            let one = control_frame(&frame, encoding);
            assert_eq!(shared.data(encoding), one.data, "{encoding:?}");
            assert_eq!(shared.frame_type(), one.frame_type);
        }
        assert_eq!(shared.len(), serde_json::to_string(&frame).unwrap().len());
    }
}
