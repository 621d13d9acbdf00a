//! The presence service of one gateway: every piece of presence state behind one lock, the
//! local connections of each followed guild (a "room"), and the frames they get. A connection
//! costs one room entry per guild; a change costs one netted diff per room, encoded once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::presence::{PresenceBody, PresenceUpdate, SharedPresenceBus};
use chat_shared::protocol::identity::UserInfo;
use chat_shared::protocol::presence::{PresenceDiff, PresenceSnapshot, TypingFrame, TypingNotice};
use chat_shared::protocol::{ErrorCode, ErrorFrame, ServerFrame};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cluster::{Changes, ClusterView};
use super::coalesce::Coalescer;
use super::config::PresenceConfig;
use super::listing::SampleDiff;
use super::local::LocalPresence;
use super::metrics::PresenceMetrics;
use super::outbox::Outgoing;
use super::rooms::Room;
use super::typing::TypingThrottle;
use crate::metrics::Metrics;
use crate::ws::handle::ConnHandle;

/// Updates waiting for the bus; beyond it they are dropped (receivers resync by `seq`).
const OUTBOX: usize = 8192;
/// How often lingers, TTLs and coalesced diffs are looked at.
const TICK: Duration = Duration::from_millis(100);
/// How long an HTTP read waits for a guild's subscription (and the full lists it asks for).
const HTTP_WAIT: Duration = Duration::from_secs(2);

pub(super) struct State {
    pub local: LocalPresence,
    pub cluster: ClusterView,
    pub coalescer: Coalescer,
    pub rooms: HashMap<Arc<str>, Room>,
    /// This gateway's change counter per guild.
    pub seqs: HashMap<Arc<str>, u64>,
    pub typing_in: TypingThrottle,
    pub typing_out: TypingThrottle,
}

pub struct PresenceService {
    pub(super) config: PresenceConfig,
    /// This gateway instance's source id.
    pub(super) own: Arc<str>,
    pub(super) bus: Option<SharedPresenceBus>,
    pub(super) state: Mutex<State>,
    pub(super) metrics: PresenceMetrics,
    outbox: mpsc::Sender<PresenceUpdate>,
    outbox_rx: Mutex<Option<mpsc::Receiver<PresenceUpdate>>>,
}

impl PresenceService {
    pub fn new(
        config: &PresenceConfig,
        bus: Option<SharedPresenceBus>,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        Arc::new(PresenceService {
            config: config.clone(),
            own: Arc::from(ulid::Ulid::new().to_string()),
            bus,
            state: Mutex::new(State {
                local: LocalPresence::new(config.linger()),
                cluster: ClusterView::new(config.ttl()),
                coalescer: Coalescer::default(),
                rooms: HashMap::new(),
                seqs: HashMap::new(),
                typing_in: TypingThrottle::default(),
                typing_out: TypingThrottle::default(),
            }),
            metrics: metrics.register_with(PresenceMetrics::register),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
        })
    }

    /// Hook: a connection of `user` is open in `guilds` (after `hello`). Each guild's members
    /// get a diff if the user is new there; the connection gets the guild's snapshot, at once
    /// or, while the guild's diff is held, when that diff goes out.
    pub fn join(self: &Arc<Self>, conn: &ConnHandle, user: &UserInfo, guilds: &[String]) {
        if !self.enabled() {
            return self.join_typing_only(conn, guilds);
        }
        let now = Instant::now();
        let user = Arc::new(user.clone());
        let mut st = self.state.lock();
        for guild in guilds {
            let guild: Arc<str> = Arc::from(guild.as_str());
            let newly = st.local.connect(&guild, &user);
            self.ensure_room(&mut st, &guild);
            if newly {
                self.local_change(&mut st, &guild, Some(&user), None);
            }
            self.flush(&mut st, &guild, now);
            let live = st.rooms.get(&guild).is_some_and(|r| r.live);
            let held = live && st.coalescer.hold_snapshot(&guild);
            let Some(room) = st.rooms.get_mut(&guild) else {
                continue;
            };
            room.conns.insert(conn.id(), conn.clone());
            if held {
                room.held.insert(conn.id());
            } else if live {
                let shared = self.shared_snapshot(&mut st, &guild);
                self.send_snapshots(&st, &guild, &shared, std::iter::once(conn));
            }
        }
    }

    /// Hook: a connection left `guilds` (closed, or its membership was removed: `at_once`
    /// skips the linger).
    pub fn leave(&self, conn: &ConnHandle, guilds: &[String], at_once: bool) {
        if !self.enabled() {
            return self.leave_typing_only(conn, guilds);
        }
        let now = Instant::now();
        let mut st = self.state.lock();
        for guild in guilds {
            let guild: Arc<str> = Arc::from(guild.as_str());
            if let Some(room) = st.rooms.get_mut(&guild) {
                room.conns.remove(&conn.id());
                room.held.remove(&conn.id());
            }
            if st.local.disconnect(&guild, conn.user_id(), now, at_once) {
                self.local_change(&mut st, &guild, None, Some(conn.user_id()));
                self.flush(&mut st, &guild, now);
            }
            self.close_room_if_unused(&mut st, &guild);
        }
    }

    /// Hook: a client `typing` frame. `Some(error)` to answer (missing or foreign guild);
    /// a throttled frame is dropped silently.
    pub fn typing(
        &self,
        user: &UserInfo,
        guilds: &[String],
        frame: TypingFrame,
    ) -> Option<ErrorFrame> {
        let Some(guild) = frame.guild_id else {
            return Some(ErrorFrame::new(ErrorCode::MissingGuild, None));
        };
        if !guilds.contains(&guild) {
            return Some(ErrorFrame {
                guild_id: Some(guild),
                ..ErrorFrame::new(ErrorCode::ForbiddenGuild, None)
            });
        }
        let now = Instant::now();
        let mut st = self.state.lock();
        if !st.typing_in.allow(&guild, &user.id, now) {
            return None;
        }
        let guild: Arc<str> = Arc::from(guild);
        self.deliver_typing(&mut st, &guild, user, now);
        self.publish(&guild, PresenceBody::Typing { user: user.clone() });
        None
    }

    /// The snapshot of a guild for `GET /api/guilds/{id}/presence` (the caller is a member).
    pub async fn read(self: &Arc<Self>, guild: &str) -> PresenceSnapshot {
        if !self.enabled() {
            return self.snapshot_of(&self.state.lock(), guild, false);
        }
        let guild: Arc<str> = Arc::from(guild);
        {
            let mut st = self.state.lock();
            if st.rooms.get(&guild).is_some_and(|r| r.live) {
                return self.snapshot_of(&st, &guild, true);
            }
            self.ensure_room(&mut st, &guild);
            if let Some(room) = st.rooms.get_mut(&guild) {
                room.watchers += 1;
            }
        }
        let deadline = Instant::now() + HTTP_WAIT;
        while Instant::now() < deadline
            && !self.state.lock().rooms.get(&guild).is_some_and(|r| r.live)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut st = self.state.lock();
        let live = st.rooms.get(&guild).is_some_and(|r| r.live);
        let snapshot = self.snapshot_of(&st, &guild, live);
        if let Some(room) = st.rooms.get_mut(&guild) {
            room.watchers = room.watchers.saturating_sub(1);
        }
        self.close_room_if_unused(&mut st, &guild);
        snapshot
    }

    /// Runs the outbox, the tick (lingers, TTLs, coalesced diffs) and the heartbeats until
    /// `stop`; then tells the other gateways this one is gone.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut outbox) = self.outbox_rx.lock().take() else {
            return;
        };
        if !self.enabled() {
            return self.run_typing_only(outbox, stop).await;
        }
        let mut tick = tokio::time::interval(TICK);
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_every());
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(update) = outbox.recv() => self.send_to_bus(&update).await,
                _ = tick.tick() => self.on_tick(Instant::now()),
                _ = heartbeat.tick() => self.heartbeats(),
            }
        }
        let farewells: Vec<Arc<str>> = self.state.lock().local.guilds().cloned().collect();
        for guild in farewells {
            let update = self.update(&guild, PresenceBody::Gone);
            let _ =
                tokio::time::timeout(Duration::from_millis(500), self.send_to_bus(&update)).await;
        }
    }

    pub(super) async fn send_to_bus(&self, update: &PresenceUpdate) {
        let Some(bus) = &self.bus else { return };
        if let Err(error) = bus.publish(update).await {
            tracing::debug!(%error, "presence update not published");
            self.metrics.publish_failures.inc();
        }
    }

    fn on_tick(&self, now: Instant) {
        let mut st = self.state.lock();
        for (guild, user_id) in st.local.expire(now) {
            self.local_change(&mut st, &guild, None, Some(&user_id));
        }
        for (guild, changes) in st.cluster.expire(now) {
            st.coalescer.record(&guild, &changes);
        }
        for guild in st.coalescer.guilds() {
            self.flush(&mut st, &guild, now);
        }
        st.typing_in.prune(now);
        st.typing_out.prune(now);
    }

    fn heartbeats(&self) {
        let st = self.state.lock();
        for guild in st.local.guilds() {
            let seq = st.seqs.get(guild).copied().unwrap_or(0);
            self.publish(guild, PresenceBody::Heartbeat { seq });
        }
    }

    pub(super) fn update(&self, guild: &str, body: PresenceBody) -> PresenceUpdate {
        PresenceUpdate {
            v: chat_shared::bus::INTERNAL_VERSION,
            guild_id: guild.to_owned(),
            from: self.own.to_string(),
            body,
        }
    }

    /// Queues an update for the bus without waiting.
    pub(super) fn publish(&self, guild: &str, body: PresenceBody) {
        if self.bus.is_some() && self.outbox.try_send(self.update(guild, body)).is_err() {
            self.metrics.publish_failures.inc();
        }
    }

    /// This gateway's user came or went in `guild`: tell the bus, update the merged view.
    fn local_change(
        &self,
        st: &mut State,
        guild: &Arc<str>,
        joined: Option<&Arc<UserInfo>>,
        left: Option<&str>,
    ) {
        let seq = st.seqs.entry(guild.clone()).or_default();
        *seq += 1;
        let body = PresenceBody::Delta {
            seq: *seq,
            joined: joined.into_iter().map(|u| UserInfo::clone(u)).collect(),
            left: left.into_iter().map(str::to_owned).collect(),
        };
        self.publish(guild, body);
        let changes = st.cluster.local(guild, &self.own, joined.cloned(), left);
        st.coalescer.record(guild, &changes);
    }

    /// Sends the guild's diff to its live room when it may go out: to the connections that
    /// were there before it, and the held snapshot to those that came while it waited.
    pub(super) fn flush(&self, st: &mut State, guild: &Arc<str>, now: Instant) {
        if !st.rooms.get(guild).is_some_and(|r| r.live) {
            return;
        }
        let large = st.cluster.count(guild) > self.config.max_listed();
        if !st.coalescer.take(guild, large, now) {
            return;
        }
        let shared = self.shared_snapshot(st, guild);
        let ServerFrame::Presence(snapshot) = shared.frame() else {
            return;
        };
        let diff = st
            .coalescer
            .advance(guild, &snapshot.online, snapshot.count as usize);
        let held = st
            .rooms
            .get_mut(guild)
            .map(|r| std::mem::take(&mut r.held))
            .unwrap_or_default();
        let Some(room) = st.rooms.get(guild) else {
            return;
        };
        if let Some(diff) = diff {
            let out = Outgoing::new(diff_frame(guild, &diff, diff.left.clone()));
            for (_, conn) in room.conns.iter().filter(|(id, _)| !held.contains(id)) {
                match diff.left_for(conn.user_id()) {
                    None => out.send(conn, &self.metrics),
                    Some(left) => {
                        Outgoing::new(diff_frame(guild, &diff, left)).send(conn, &self.metrics)
                    }
                }
            }
        }
        let held = held.iter().filter_map(|id| room.conns.get(id));
        self.send_snapshots(st, guild, &shared, held);
    }

    /// Records changes of the merged view of `guild` and flushes them if due.
    pub(super) fn changed(&self, st: &mut State, guild: &Arc<str>, changes: Changes, now: Instant) {
        st.coalescer.record(guild, &changes);
        self.flush(st, guild, now);
    }

    /// A typing notice to the guild's local connections, except the typist's own.
    pub(super) fn deliver_typing(
        &self,
        st: &mut State,
        guild: &Arc<str>,
        user: &UserInfo,
        now: Instant,
    ) {
        if !st.typing_out.allow(guild, &user.id, now) {
            return;
        }
        let Some(room) = st.rooms.get(guild).filter(|r| r.live) else {
            return;
        };
        let out = Outgoing::new(ServerFrame::Typing(TypingNotice {
            guild_id: guild.to_string(),
            user: user.clone(),
        }));
        for conn in room.conns.values().filter(|c| **c.user_id() != *user.id) {
            out.send(conn, &self.metrics);
        }
    }
}

/// A diff frame of `guild` with `left` (the diff's own, or one viewer's).
fn diff_frame(guild: &str, diff: &SampleDiff, left: Vec<String>) -> ServerFrame {
    ServerFrame::PresenceDiff(PresenceDiff {
        guild_id: guild.to_owned(),
        count: diff.count as u64,
        joined: diff.joined.clone(),
        left,
    })
}
