//! The hub: which local connections are in which guild, which are admins, and which belong to
//! which user. It holds one bus subscription per guild with at least one local member
//! (reference-counted), one admin-only subscription while a local admin is connected, and the
//! user-event feed. Each guild feed hands its members every entry in log order (an entry whose
//! `prev` is ahead of the last one seen means a delivery was missed, and the gap is filled from
//! the log first, once for the whole gateway); the admin-only feed hands every local admin its
//! entries as they come. Each connection's sequencer then orders what both feeds bring and
//! filters it by what the viewer may see. After a bus reconnect every guild feed reads what
//! was published meanwhile, and admins' connections are told to do the same for theirs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::nats::connection_events;
use chat_shared::bus::{Bus, BusError, LogEntry, Topic, UserEvent};
use chat_shared::protocol::{ServerFrame, close_code};
use futures::StreamExt;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::wire_entry::WireEntry;
use crate::ws::handle::{ConnHandle, Outbound, Queued};

mod feed;

use feed::Feed;

/// How long a join waits for a new guild subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the bus's reconnect count is looked at.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);

type Members = HashMap<u64, ConnHandle>;

struct Room {
    members: Members,
    feed: Feed,
}

#[derive(Default)]
struct State {
    rooms: HashMap<Arc<str>, Room>,
    admins: Members,
    admin_feed: Option<Feed>,
    /// Each user's local connections: a few, so a vector sized to them (a map's smallest
    /// table would be ~100 bytes more per connected user).
    users: HashMap<Arc<str>, Vec<ConnHandle>>,
}

/// Local subscriptions of one gateway.
pub struct Hub {
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    state: RwLock<State>,
}

impl Hub {
    pub fn new(bus: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Hub {
            bus,
            metrics,
            state: RwLock::new(State::default()),
        })
    }

    /// Registers a connection in its guilds (and as admin), subscribing to what is new.
    /// Returns once every needed subscription is live, so nothing posted after this is missed.
    pub async fn join(
        self: &Arc<Self>,
        conn: &ConnHandle,
        guilds: &[String],
    ) -> Result<(), BusError> {
        let waits = {
            let mut state = self.state.write();
            let conns = state.users.entry(conn.user_id().clone()).or_default();
            if !conns.iter().any(|c| c.id() == conn.id()) {
                conns.reserve_exact(1);
                conns.push(conn.clone());
            }
            let mut waits = Vec::new();
            for guild in guilds {
                let guild: Arc<str> = Arc::from(guild.as_str());
                let room = state.rooms.entry(guild.clone()).or_insert_with(|| Room {
                    members: Members::new(),
                    feed: feed::start(self, Topic::Guild(guild.to_string())),
                });
                room.members.insert(conn.id(), conn.clone());
                waits.push(room.feed.ready.clone());
            }
            if conn.is_admin() {
                state.admins.insert(conn.id(), conn.clone());
                let feed = state
                    .admin_feed
                    .get_or_insert_with(|| feed::start(self, Topic::AdminOnly));
                waits.push(feed.ready.clone());
            }
            waits
        };
        for mut ready in waits {
            match tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready.wait_for(|r| *r)).await {
                Ok(Ok(_)) => {}
                _ => return Err(BusError::Timeout),
            }
        }
        Ok(())
    }

    /// Removes a connection from these guilds (and the admin set when `all`), ending
    /// subscriptions nobody local needs any more.
    pub fn leave(&self, conn: &ConnHandle, guilds: &[String], all: bool) {
        let mut state = self.state.write();
        for guild in guilds {
            let guild: &str = guild;
            if let Some(room) = state.rooms.get_mut(guild) {
                room.members.remove(&conn.id());
                if room.members.is_empty() {
                    room.feed.stop.cancel();
                    state.rooms.remove(guild);
                }
            }
        }
        if all {
            if let Some(conns) = state.users.get_mut(conn.user_id()) {
                conns.retain(|c| c.id() != conn.id());
                if conns.is_empty() {
                    state.users.remove(conn.user_id());
                }
            }
            if state.admins.remove(&conn.id()).is_some()
                && state.admins.is_empty()
                && let Some(feed) = state.admin_feed.take()
            {
                feed.stop.cancel();
            }
        }
    }

    /// Every local connection, for a drain.
    pub fn connections(&self) -> Vec<ConnHandle> {
        let state = self.state.read();
        state
            .users
            .values()
            .flat_map(|conns| conns.iter().cloned())
            .collect()
    }

    /// Guilds with a local subscription (the revocation tests watch a feed end).
    pub fn subscribed_guilds(&self) -> usize {
        self.state.read().rooms.len()
    }

    /// Fans an entry out: a guild feed's to the guild's local members, the admin-only feed's
    /// to every local admin (one `gateway.fanout` span per entry, on the trace of the router
    /// that published it, while exporting). Each connection's sequencer drops what its viewer
    /// may not see or already has.
    fn fan_out(&self, mut entry: LogEntry, admin_feed: bool) {
        let span = chat_shared::export_span!(
            "gateway.fanout",
            guild = %entry.message.guild_id,
            seq = entry.seq,
            recipients = tracing::field::Empty,
        );
        std::mem::take(&mut entry.trace).set_parent_of(&span);
        let _in_span = span.enter();
        let shared = WireEntry::new(entry);
        let state = self.state.read();
        let viewers = if admin_feed {
            Some(&state.admins)
        } else {
            state.rooms.get(shared.guild_id()).map(|r| &r.members)
        };
        span.record("recipients", viewers.map_or(0, |v| v.len()));
        let Some(viewers) = viewers else { return };
        self.metrics.fanout_size.observe(viewers.len() as f64);
        for conn in viewers.values() {
            match conn.queue_live(&shared) {
                Queued::TooSlow => {
                    self.metrics.slow_closes.inc();
                    self.metrics.outbound_drops.inc();
                }
                Queued::Dropped => {
                    self.metrics.outbound_drops.inc();
                }
                Queued::Yes | Queued::Gone => {}
            }
        }
    }

    /// After a bus reconnect: every guild feed reads what it may have missed, and every
    /// admin's connection does the same for the admin-only entries it follows.
    fn resync(&self) {
        let state = self.state.read();
        for room in state.rooms.values() {
            room.feed.resync.notify_one();
        }
        for conn in state.admins.values() {
            conn.try_send(Outbound::Resync);
        }
    }

    /// Watches the bus's reconnects until `stop`.
    async fn watch_reconnects(self: Arc<Self>, stop: CancellationToken) {
        let mut seen = connection_events::reconnects();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RECONNECT_CHECK) => {}
            }
            let now = connection_events::reconnects();
            if now != seen {
                seen = now;
                tracing::info!("bus reconnected: reading what feeds may have missed");
                self.resync();
            }
        }
    }

    /// Applies a user event to the user's local connections.
    pub fn apply_user_event(&self, user_id: &str, event: &UserEvent) {
        let state = self.state.read();
        let Some(conns) = state.users.get(user_id) else {
            return;
        };
        for conn in conns {
            match event {
                UserEvent::Revoked => conn.close(close_code::SESSION_REVOKED, "session revoked"),
                UserEvent::GuildsChanged => conn.notify_guilds_changed(),
                UserEvent::Notice { frame } => {
                    let notice = Outbound::frame(ServerFrame::Error(frame.clone()));
                    if !conn.try_send(notice) && !conn.is_closed() {
                        self.metrics.outbound_drops.inc();
                    }
                }
            }
        }
    }

    /// Follows the user-event feed until `stop`.
    pub async fn run_user_events(self: Arc<Self>, stop: CancellationToken) {
        tokio::spawn(self.clone().watch_reconnects(stop.clone()));
        loop {
            match self.bus.user_events().await {
                Ok(mut events) => loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        next = events.next() => match next {
                            Some((user, event)) => self.apply_user_event(&user, &event),
                            None => break,
                        },
                    }
                },
                Err(error) => tracing::warn!(%error, "user events unavailable; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
