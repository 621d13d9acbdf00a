//! The rooms of the presence service: a room per followed guild holds its local connections;
//! following a guild starts its merged view and bus subscription, the last connection (or HTTP
//! read) gone ends both, and the subscription going live or failing sends the room a fresh
//! snapshot. Snapshots are made here: the guild's listed sample, with the viewer added for a
//! viewer outside it (see `listing`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::UserInfo;
use chat_shared::protocol::presence::PresenceSnapshot;
use tokio_util::sync::CancellationToken;

use super::listing::sample_size;
use super::outbox::Outgoing;
use super::service::{PresenceService, State};
use crate::shared_frame::SharedFrame;
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
    /// The listed sample's snapshot and the view's version it was made at.
    pub snapshot: Option<(u64, Arc<SharedFrame>)>,
    pub stop: CancellationToken,
}

impl PresenceService {
    /// The snapshot of `guild` for a reader that is not a connection (`GET …/presence`), or
    /// `available: false` for every reader.
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

    /// The guild's listed sample as one snapshot frame, made once per change of its view
    /// and kept in the room.
    pub(super) fn shared_snapshot(&self, st: &mut State, guild: &Arc<str>) -> Arc<SharedFrame> {
        let version = st.cluster.version(guild);
        if let Some((_, frame)) = st
            .rooms
            .get(guild)
            .and_then(|r| r.snapshot.as_ref())
            .filter(|(v, _)| *v == version)
        {
            return frame.clone();
        }
        let count = st.cluster.count(guild);
        let (sample, count) = st
            .cluster
            .listed(guild, sample_size(count, self.config.max_listed()));
        let frame = Arc::new(SharedFrame::new(snapshot_frame(guild, sample, count)));
        if let Some(room) = st.rooms.get_mut(guild) {
            room.snapshot = Some((version, frame.clone()));
        }
        frame
    }

    /// Sends `conns` of `guild` their snapshots of the sample in `shared`: the shared frame
    /// to the viewers in it, and to each of the others the sample with them added (made by
    /// the connection, off this lock).
    pub(super) fn send_snapshots<'c>(
        &self,
        st: &State,
        guild: &str,
        shared: &Arc<SharedFrame>,
        conns: impl Iterator<Item = &'c ConnHandle>,
    ) {
        let ServerFrame::Presence(snapshot) = shared.frame() else {
            return;
        };
        let out = Outgoing::shared(shared.clone());
        for conn in conns {
            let viewer = st.cluster.user(guild, conn.user_id());
            match viewer.filter(|v| !snapshot.online.iter().any(|u| u.id == v.id)) {
                None => out.send(conn, &self.metrics),
                Some(viewer) => out.send_with_viewer(conn, viewer, &self.metrics),
            }
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
                snapshot: None,
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
        if !(live && self.enabled()) {
            st.coalescer.forget(guild);
            let out = Outgoing::new(ServerFrame::Presence(self.snapshot_of(&st, guild, false)));
            for conn in st
                .rooms
                .get(guild)
                .into_iter()
                .flat_map(|r| r.conns.values())
            {
                out.send(conn, &self.metrics);
            }
            return;
        }
        let shared = self.shared_snapshot(&mut st, guild);
        if let ServerFrame::Presence(snapshot) = shared.frame() {
            st.coalescer
                .told_all(guild, &snapshot.online, snapshot.count as usize);
        }
        let conns = st
            .rooms
            .get(guild)
            .into_iter()
            .flat_map(|r| r.conns.values());
        self.send_snapshots(&st, guild, &shared, conns);
    }
}

/// A snapshot of `sample` (and `count` online).
fn snapshot_frame(guild: &str, online: Vec<Arc<UserInfo>>, count: usize) -> ServerFrame {
    ServerFrame::Presence(PresenceSnapshot {
        guild_id: guild.to_owned(),
        count: count as u64,
        truncated: count > online.len(),
        available: true,
        online,
    })
}
