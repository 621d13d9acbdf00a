//! A connection's place in the hub between the handshake and the connection task: registered
//! before the upgrade (so no live message of the first moments is missed), and left again if
//! the upgrade never completes — the client reset the socket before the 101 went out, or the
//! handler was dropped — instead of staying in the hub for ever.

use std::sync::Arc;

use crate::hub::Hub;
use crate::ws::handle::ConnHandle;

/// Leaves the hub on drop unless [`Registration::hand_over`] passed the connection on to its
/// task (which leaves the hub itself when it ends).
pub struct Registration {
    hub: Arc<Hub>,
    handle: ConnHandle,
    guilds: Vec<String>,
    armed: bool,
}

impl Registration {
    /// The guard for `handle`, about to join `guilds`.
    pub fn new(hub: Arc<Hub>, handle: ConnHandle, guilds: Vec<String>) -> Self {
        Registration {
            hub,
            handle,
            guilds,
            armed: true,
        }
    }

    /// The upgrade completed: the connection task owns the registration now.
    pub fn hand_over(mut self) {
        self.armed = false;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!(
                id = self.handle.id(),
                "upgrade never completed; leaving the hub"
            );
            self.hub.leave(&self.handle, &self.guilds, true);
            self.handle
                .close(chat_shared::protocol::close_code::NORMAL, "");
        }
    }
}
