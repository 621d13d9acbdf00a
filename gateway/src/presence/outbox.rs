//! A presence or typing frame on its way to many local connections, queued without waiting (a
//! full queue drops it and counts the drop). The connection's writer encodes it, as it does
//! every transport-neutral frame of the outbound queue.

use chat_shared::protocol::ServerFrame;

use crate::ws::handle::{ConnHandle, Outbound};

use super::metrics::PresenceMetrics;

pub struct Outgoing<'f> {
    frame: &'f ServerFrame,
}

impl<'f> Outgoing<'f> {
    pub fn new(frame: &'f ServerFrame) -> Self {
        Outgoing { frame }
    }

    /// Queues the frame for `conn`.
    pub fn send(&mut self, conn: &ConnHandle, metrics: &PresenceMetrics) {
        if !conn.try_send(Outbound::frame(self.frame.clone())) && !conn.is_closed() {
            metrics.frames_dropped.inc();
        }
    }
}
