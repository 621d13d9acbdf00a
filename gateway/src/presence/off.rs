//! Presence switched off (`PRESENCE_ENABLED=false`): the hooks keep only what typing needs (a
//! room of local connections per guild and its bus subscription, for the other gateways'
//! typing notices). Nothing about who is online is tracked, published or timed: no local or
//! merged view, no diffs, no heartbeats or lingers; each connection gets one `presence`
//! snapshot per guild saying `available:false` (the contract's "presence cannot be read"), as
//! does `GET /api/guilds/{guildId}/presence`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::presence::PresenceUpdate;
use chat_shared::protocol::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::outbox::Outgoing;
use super::service::PresenceService;
use super::typing::TYPING_EVERY;
use crate::ws::handle::ConnHandle;

/// How often the typing throttles forget finished windows when presence is off (the only
/// timer left; it touches at most the last window's typists).
const PRUNE: Duration = TYPING_EVERY;

impl PresenceService {
    /// Whether presence is on (`PRESENCE_ENABLED`).
    pub fn enabled(&self) -> bool {
        self.config.presence_enabled
    }

    /// `join` with presence off: into each guild's room (typing), one unavailable snapshot
    /// (now when the room is live, else when it goes live, as with presence on).
    pub(super) fn join_typing_only(self: &Arc<Self>, conn: &ConnHandle, guilds: &[String]) {
        let mut st = self.state.lock();
        for guild in guilds {
            let guild: Arc<str> = Arc::from(guild.as_str());
            self.ensure_room(&mut st, &guild);
            let Some(room) = st.rooms.get_mut(&guild) else {
                continue;
            };
            room.conns.insert(conn.id(), conn.clone());
            if !room.live {
                continue;
            }
            let frame = ServerFrame::Presence(self.snapshot_of(&st, &guild, false));
            Outgoing::new(frame).send(conn, &self.metrics);
        }
    }

    /// `leave` with presence off: out of the rooms, closing those left empty.
    pub(super) fn leave_typing_only(&self, conn: &ConnHandle, guilds: &[String]) {
        let mut st = self.state.lock();
        for guild in guilds {
            let guild: Arc<str> = Arc::from(guild.as_str());
            if let Some(room) = st.rooms.get_mut(&guild) {
                room.conns.remove(&conn.id());
            }
            self.close_room_if_unused(&mut st, &guild);
        }
    }

    /// `run` with presence off: the outbox (typing notices) and the throttles' pruning; no
    /// heartbeats, lingers, TTLs or coalescing, and no farewell (nothing was announced).
    pub(super) async fn run_typing_only(
        self: Arc<Self>,
        mut outbox: mpsc::Receiver<PresenceUpdate>,
        stop: CancellationToken,
    ) {
        let mut prune = tokio::time::interval(PRUNE);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(update) = outbox.recv() => self.send_to_bus(&update).await,
                _ = prune.tick() => {
                    let now = Instant::now();
                    let mut st = self.state.lock();
                    st.typing_in.prune(now);
                    st.typing_out.prune(now);
                }
            }
        }
    }
}
