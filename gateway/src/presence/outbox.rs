//! A presence or typing frame on its way to many local connections: one [`SharedFrame`]
//! (encoded once per encoding, however many connections get it), queued without waiting (a
//! full queue drops it and counts the drop).

use std::sync::Arc;

use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::UserInfo;

use crate::shared_frame::{SharedFrame, ViewerSnapshot};
use crate::ws::handle::{ConnHandle, Outbound};

use super::metrics::PresenceMetrics;

pub struct Outgoing(Arc<SharedFrame>);

impl Outgoing {
    pub fn new(frame: ServerFrame) -> Self {
        Outgoing(Arc::new(SharedFrame::new(frame)))
    }

    /// A frame already shared (a guild's cached snapshot).
    pub fn shared(frame: Arc<SharedFrame>) -> Self {
        Outgoing(frame)
    }

    /// Queues the frame for `conn`.
    pub fn send(&self, conn: &ConnHandle, metrics: &PresenceMetrics) {
        queue(conn, Outbound::Shared(self.0.clone()), metrics);
    }

    /// Queues the frame, a snapshot, for `conn` with `viewer` added to its list.
    pub fn send_with_viewer(
        &self,
        conn: &ConnHandle,
        viewer: &UserInfo,
        metrics: &PresenceMetrics,
    ) {
        let snapshot = ViewerSnapshot {
            shared: self.0.clone(),
            viewer: viewer.clone(),
        };
        queue(conn, Outbound::Snapshot(Box::new(snapshot)), metrics);
    }
}

fn queue(conn: &ConnHandle, item: Outbound, metrics: &PresenceMetrics) {
    if !conn.try_send(item) && !conn.is_closed() {
        metrics.frames_dropped.inc();
    }
}
