//! The hub: which local connections are in which guild, which are admins, and which belong to
//! which user. It holds one bus subscription per guild with at least one local member
//! (reference-counted), one admin-only subscription while a local admin is connected, and the
//! user-event feed. Each guild feed delivers in log order: an entry whose `prev` is ahead of
//! the last one seen means a delivery was missed, and the gap is filled from the log first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::{Bus, BusError, LogEntry, Topic, UserEvent, Visibility};
use chat_shared::protocol::{ServerFrame, close_code};
use futures::StreamExt;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::delivery::{Delivery, control_frame};
use crate::metrics::Metrics;
use crate::ws::handle::{ConnHandle, Outbound, Queued};

/// How long a join waits for a new guild subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries read per gap fill.
const GAP_FILL_LIMIT: usize = 1000;

type Members = HashMap<u64, ConnHandle>;

struct Feed {
    stop: CancellationToken,
    ready: watch::Receiver<bool>,
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

    /// Guilds with a local subscription (for tests and metrics).
    pub fn subscribed_guilds(&self) -> usize {
        self.state.read().rooms.len()
    }

    fn start_feed(self: &Arc<Self>, topic: Topic) -> Feed {
        let stop = CancellationToken::new();
        let (ready_tx, ready) = watch::channel(false);
        let span = tracing::info_span!("feed", topic = ?topic);
        tokio::spawn(
            run_feed(
                Arc::downgrade(self),
                self.bus.clone(),
                topic,
                stop.clone(),
                ready_tx,
            )
            .instrument(span),
        );
        Feed { stop, ready }
    }

    /// Fans a guild entry out to the local viewers allowed to see it (one `gateway.fanout`
    /// span per entry, on the trace of the router that published it, while exporting).
    fn fan_out(&self, mut entry: LogEntry) {
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
        let viewers = if delivery.message.admin_only {
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

    /// Fans an admin-only entry out when no guild feed of this gateway carries it.
    fn fan_out_admin_only(&self, entry: LogEntry) {
        if !self
            .state
            .read()
            .rooms
            .contains_key(entry.message.guild_id.as_str())
        {
            self.fan_out(entry);
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
                    let message =
                        control_frame(&ServerFrame::Error(frame.clone()), conn.encoding());
                    if !conn.try_send(Outbound::frame(message)) && !conn.is_closed() {
                        self.metrics.outbound_drops.inc();
                    }
                }
            }
        }
    }

    /// Follows the user-event feed until `stop`.
    pub async fn run_user_events(self: Arc<Self>, stop: CancellationToken) {
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

/// One subscription: subscribe (retrying), report ready, then deliver until stopped.
async fn run_feed(
    hub: std::sync::Weak<Hub>,
    bus: Arc<dyn Bus>,
    topic: Topic,
    stop: CancellationToken,
    ready: watch::Sender<bool>,
) {
    let mut stream = loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            subscribed = bus.subscribe(topic.clone()) => match subscribed {
                Ok(stream) => break stream,
                Err(error) => {
                    tracing::warn!(%error, "subscribe failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
    };
    let _ = ready.send(true);
    let mut last_seq = 0u64;
    loop {
        let entry = tokio::select! {
            _ = stop.cancelled() => return,
            next = stream.next() => match next {
                Some(entry) => entry,
                None => return,
            },
        };
        let Some(hub) = hub.upgrade() else { return };
        match &topic {
            Topic::AdminOnly => hub.fan_out_admin_only(entry),
            Topic::Guild(guild) => {
                last_seq = deliver_in_order(&hub, bus.as_ref(), guild, last_seq, entry).await;
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
                    hub.fan_out(missed);
                }
            }
            Err(error) => tracing::warn!(%error, "gap fill failed; clients recover by resume"),
        }
    }
    if entry.seq > last {
        last = entry.seq;
        hub.fan_out(entry);
    }
    last
}
