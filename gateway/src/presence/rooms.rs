//! The rooms of the presence service: a room per followed guild holds its local connections;
//! following a guild starts its merged view and bus subscription, the last connection (or HTTP
//! read) gone ends both, and the subscription going live or failing sends the room a fresh
//! snapshot. Snapshots are made here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::presence::PresenceSnapshot;
use tokio_util::sync::CancellationToken;

use super::outbox::Outgoing;
use super::service::{PresenceService, State};
use crate::ws::handle::ConnHandle;

/// Local connections following a guild.
pub(super) struct Room {
    pub conns: HashMap<u64, ConnHandle>,
    /// Connections whose snapshot waits for the guild's held diff (see `coalesce`).
    pub held: HashSet<u64>,
    /// HTTP reads waiting on this room.
    pub watchers: u32,
    /// The bus subscription is live (the snapshots went out).
    pub live: bool,
    pub stop: CancellationToken,
}

impl PresenceService {
    pub(super) fn snapshot_of(&self, st: &State, guild: &str, available: bool) -> PresenceSnapshot {
        if !available {
            return PresenceSnapshot {
                guild_id: guild.to_owned(),
                count: 0,
                truncated: false,
                available: false,
                online: Vec::new(),
            };
        }
        let (online, count) = st.cluster.listed(guild, self.config.max_listed());
        PresenceSnapshot {
            guild_id: guild.to_owned(),
            count: count as u64,
            truncated: count > online.len(),
            available: true,
            online,
        }
    }

    /// Starts following a guild: its room, its merged view and its bus subscription.
    pub(super) fn ensure_room(self: &Arc<Self>, st: &mut State, guild: &Arc<str>) {
        if st.rooms.contains_key(guild) {
            return;
        }
        if self.enabled() {
            let users = st.local.users(guild);
            st.cluster.follow(guild, &self.own, users);
        }
        let stop = CancellationToken::new();
        let live = match &self.bus {
            Some(bus) => {
                super::feed::start(
                    Arc::downgrade(self),
                    bus.clone(),
                    guild.clone(),
                    stop.clone(),
                );
                false
            }
            None => true,
        };
        st.rooms.insert(
            guild.clone(),
            Room {
                conns: HashMap::new(),
                held: HashSet::new(),
                watchers: 0,
                live,
                stop,
            },
        );
        self.metrics.followed_guilds.inc();
    }

    pub(super) fn close_room_if_unused(&self, st: &mut State, guild: &Arc<str>) {
        let unused = st
            .rooms
            .get(guild)
            .is_some_and(|r| r.conns.is_empty() && r.watchers == 0);
        if !unused {
            return;
        }
        if let Some(room) = st.rooms.remove(guild) {
            room.stop.cancel();
            self.metrics.followed_guilds.dec();
        }
        st.cluster.unfollow(guild);
        st.coalescer.forget(guild);
    }

    /// The guild's subscription is live (`true`) or could not be made in time (`false`):
    /// every connection of the room gets a fresh snapshot saying so.
    pub(super) fn set_live(&self, guild: &Arc<str>, live: bool) {
        let mut st = self.state.lock();
        let Some(room) = st.rooms.get_mut(guild) else {
            return;
        };
        room.live = live;
        room.held.clear();
        st.coalescer.forget(guild);
        let available = live && self.enabled();
        let frame = ServerFrame::Presence(self.snapshot_of(&st, guild, available));
        let mut out = Outgoing::new(&frame);
        for conn in st
            .rooms
            .get(guild)
            .into_iter()
            .flat_map(|r| r.conns.values())
        {
            out.send(conn, &self.metrics);
        }
    }
}
