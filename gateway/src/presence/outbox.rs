//! A presence or typing frame on its way to many local connections: encoded at most once per
//! encoding, queued without waiting (a full queue drops it and counts the drop).

use axum::extract::ws::Message;
use chat_shared::codec::Encoding;
use chat_shared::protocol::ServerFrame;

use crate::delivery::{ControlFrame, control_frame};
use crate::metrics::FrameType;
use crate::ws::handle::{ConnHandle, Outbound};

use super::metrics::PresenceMetrics;

pub struct Outgoing<'f> {
    frame: &'f ServerFrame,
    frame_type: FrameType,
    json: Option<Message>,
    msgpack: Option<Message>,
}

impl<'f> Outgoing<'f> {
    pub fn new(frame: &'f ServerFrame) -> Self {
        Outgoing {
            frame,
            frame_type: FrameType::of(frame),
            json: None,
            msgpack: None,
        }
    }

    /// Queues the frame for `conn`.
    pub fn send(&mut self, conn: &ConnHandle, metrics: &PresenceMetrics) {
        let encoding = conn.encoding();
        let slot = match encoding {
            Encoding::Json => &mut self.json,
            Encoding::MsgPack => &mut self.msgpack,
        };
        let message = slot
            .get_or_insert_with(|| control_frame(self.frame, encoding).message)
            .clone();
        let item = Outbound::frame(ControlFrame {
            frame_type: self.frame_type,
            message,
        });
        if !conn.try_send(item) && !conn.is_closed() {
            metrics.frames_dropped.inc();
        }
    }
}
