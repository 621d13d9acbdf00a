//! A presence or typing frame on its way to many local connections: made into one
//! [`SharedFrame`] on first use (encoded once per encoding, however many connections get it)
//! and queued without waiting (a full queue drops it and counts the drop).

use std::sync::Arc;

use chat_shared::protocol::ServerFrame;

use crate::shared_frame::SharedFrame;
use crate::ws::handle::{ConnHandle, Outbound};

use super::metrics::PresenceMetrics;

pub struct Outgoing<'f> {
    frame: &'f ServerFrame,
    shared: Option<Arc<SharedFrame>>,
}

impl<'f> Outgoing<'f> {
    pub fn new(frame: &'f ServerFrame) -> Self {
        Outgoing {
            frame,
            shared: None,
        }
    }

    /// Queues the frame for `conn`.
    pub fn send(&mut self, conn: &ConnHandle, metrics: &PresenceMetrics) {
        let shared = self
            .shared
            .get_or_insert_with(|| Arc::new(SharedFrame::new(self.frame.clone())))
            .clone();
        if !conn.try_send(Outbound::Shared(shared)) && !conn.is_closed() {
            metrics.frames_dropped.inc();
        }
    }
}
