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
use chat_shared::bus::{Bus, BusError, LogEntry, Topic, UserEvent, Visibility};
use chat_shared::protocol::{ServerFrame, close_code};
use futures::StreamExt;
use parking_lot::RwLock;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::ws::handle::{ConnHandle, Outbound, Queued};

/// How long a join waits for a new guild subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries read per gap fill.
const GAP_FILL_LIMIT: usize = 1000;
/// How often the bus's reconnect count is looked at.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);

type Members = HashMap<u64, ConnHandle>;

struct Feed {
    stop: CancellationToken,
    ready: watch::Receiver<bool>,
    /// Read what may have been missed (after a bus reconnect).
    resync: Arc<Notify>,
}

struct Room {
    members: Members,
    feed: Feed,
}

#[derive(Default)]
struct State {
    rooms: HashMap<Arc<str>, Room>,
    admins: Members,
    admin_feed: Option<Feed>,
    users: HashMap<Arc<str>, Members>,
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
            state
                .users
                .entry(conn.user_id().clone())
                .or_default()
                .insert(conn.id(), conn.clone());
            let mut waits = Vec::new();
            for guild in guilds {
                let guild: Arc<str> = Arc::from(guild.as_str());
                let room = state.rooms.entry(guild.clone()).or_insert_with(|| Room {
                    members: Members::new(),
                    feed: self.start_feed(Topic::Guild(guild.to_string())),
                });
                room.members.insert(conn.id(), conn.clone());
                waits.push(room.feed.ready.clone());
            }
            if conn.is_admin() {
                state.admins.insert(conn.id(), conn.clone());
                let feed = state
                    .admin_feed
                    .get_or_insert_with(|| self.start_feed(Topic::AdminOnly));
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
                conns.remove(&conn.id());
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
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// Guilds with a local subscription (the revocation tests watch a feed end).
    pub fn subscribed_guilds(&self) -> usize {
        self.state.read().rooms.len()
    }

    fn start_feed(self: &Arc<Self>, topic: Topic) -> Feed {
        let stop = CancellationToken::new();
        let (ready_tx, ready) = watch::channel(false);
        let resync = Arc::new(Notify::new());
        let span = tracing::info_span!("feed", topic = ?topic);
        let feed = FeedTask {
            hub: Arc::downgrade(self),
            bus: self.bus.clone(),
            topic,
            stop: stop.clone(),
            ready: ready_tx,
            resync: resync.clone(),
        };
        tokio::spawn(feed.run().instrument(span));
        Feed {
            stop,
            ready,
            resync,
        }
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
        let delivery = Delivery::new(entry);
        let state = self.state.read();
        let viewers = if admin_feed {
            Some(&state.admins)
        } else {
            state.rooms.get(delivery.guild_id()).map(|r| &r.members)
        };
        span.record("recipients", viewers.map_or(0, |v| v.len()));
        let Some(viewers) = viewers else { return };
        self.metrics.fanout_size.observe(viewers.len() as f64);
        for conn in viewers.values() {
            match conn.deliver(&delivery) {
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
        for conn in conns.values() {
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

/// One subscription's task.
struct FeedTask {
    hub: std::sync::Weak<Hub>,
    bus: Arc<dyn Bus>,
    topic: Topic,
    stop: CancellationToken,
    ready: watch::Sender<bool>,
    resync: Arc<Notify>,
}

impl FeedTask {
    /// Subscribes (retrying), reports ready, then delivers until stopped; a stream that ends
    /// is subscribed again, and what was published meanwhile read from the log.
    async fn run(self) {
        let mut last_seq = 0u64;
        loop {
            let Some(mut stream) = self.subscribe().await else {
                return;
            };
            if last_seq != 0 {
                last_seq = self.catch_up(last_seq).await;
            }
            let _ = self.ready.send(true);
            loop {
                let entry = tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = self.resync.notified() => {
                        last_seq = self.catch_up(last_seq).await;
                        continue;
                    }
                    next = stream.next() => match next {
                        Some(entry) => entry,
                        None => break,
                    },
                };
                let Some(hub) = self.hub.upgrade() else {
                    return;
                };
                match &self.topic {
                    Topic::AdminOnly => hub.fan_out(entry, true),
                    Topic::Guild(guild) => {
                        last_seq =
                            deliver_in_order(&hub, self.bus.as_ref(), guild, last_seq, entry).await;
                    }
                }
            }
            tracing::warn!("feed ended; subscribing again");
        }
    }

    async fn subscribe(&self) -> Option<chat_shared::bus::BoxStream<LogEntry>> {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                subscribed = self.bus.subscribe(self.topic.clone()) => match subscribed {
                    Ok(stream) => return Some(stream),
                    Err(error) => {
                        tracing::warn!(%error, "subscribe failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        }
    }

    /// Delivers what the guild log holds after `last_seq` (the admin-only feed has no order
    /// of its own: its connections catch up themselves). Returns the new last seq.
    async fn catch_up(&self, mut last_seq: u64) -> u64 {
        let (Topic::Guild(guild), Some(hub)) = (&self.topic, self.hub.upgrade()) else {
            return last_seq;
        };
        if last_seq == 0 {
            return last_seq;
        }
        loop {
            match self
                .bus
                .read_after(guild, last_seq, GAP_FILL_LIMIT, Visibility::All)
                .await
            {
                Ok(page) => {
                    if !page.entries.is_empty() {
                        hub.metrics.gap_fills.inc();
                    }
                    for entry in page.entries {
                        last_seq = entry.seq;
                        hub.fan_out(entry, false);
                    }
                    if !page.more {
                        return last_seq;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "catch-up failed; clients recover by resume");
                    return last_seq;
                }
            }
        }
    }
}

/// Delivers `entry` after any entries it shows were missed; returns the new last seq.
async fn deliver_in_order(
    hub: &Hub,
    bus: &dyn Bus,
    guild: &str,
    last_seq: u64,
    entry: LogEntry,
) -> u64 {
    if last_seq != 0 && entry.seq <= last_seq {
        return last_seq;
    }
    let mut last = last_seq;
    if last_seq != 0 && entry.prev > last_seq {
        hub.metrics.gap_fills.inc();
        match bus
            .read_after(guild, last_seq, GAP_FILL_LIMIT, Visibility::All)
            .await
        {
            Ok(replay) => {
                for missed in replay.entries.into_iter().filter(|e| e.seq < entry.seq) {
                    last = missed.seq;
                    hub.fan_out(missed, false);
                }
            }
            Err(error) => tracing::warn!(%error, "gap fill failed; clients recover by resume"),
        }
    }
    if entry.seq > last {
        last = entry.seq;
        hub.fan_out(entry, false);
    }
    last
}
