//! One guild's presence subscription: subscribe (retrying), ask every gateway for its full
//! list, wait a moment for the answers, go live (snapshots to the room), then apply what the
//! other gateways say until the room closes. A subscription not made within
//! [`UNAVAILABLE_AFTER`] tells the room `available:false` and keeps trying.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chat_shared::bus::presence::{PresenceBody, PresenceUpdate, Received, SharedPresenceBus};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::service::PresenceService;

/// How long the first answers to the full-list request may take before the snapshots go out.
const SETTLE: Duration = Duration::from_millis(150);
/// How long a subscription may take before the room is told presence is unavailable.
const UNAVAILABLE_AFTER: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(500);

pub fn start(
    service: Weak<PresenceService>,
    bus: SharedPresenceBus,
    guild: Arc<str>,
    stop: CancellationToken,
) {
    let span = tracing::info_span!("presence_feed", guild = %guild);
    tokio::spawn(run(service, bus, guild, stop).instrument(span));
}

async fn run(
    service: Weak<PresenceService>,
    bus: SharedPresenceBus,
    guild: Arc<str>,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let mut told_unavailable = false;
    let mut stream = loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            subscribed = bus.subscribe(&guild) => match subscribed {
                Ok(stream) => break stream,
                Err(error) => {
                    tracing::warn!(%error, "presence subscription failed; retrying");
                    if !told_unavailable && started.elapsed() >= UNAVAILABLE_AFTER {
                        told_unavailable = true;
                        let Some(service) = service.upgrade() else { return };
                        service.set_live(&guild, false);
                    }
                    tokio::time::sleep(RETRY).await;
                }
            },
        }
    };
    {
        let Some(service) = service.upgrade() else {
            return;
        };
        if service.enabled() {
            service.publish(&guild, PresenceBody::Request { to: None });
        }
    }
    // Presence off: no full lists to wait for, typing flows at once.
    let settle = tokio::time::sleep(match service.upgrade() {
        Some(service) if !service.enabled() => Duration::ZERO,
        _ => SETTLE,
    });
    tokio::pin!(settle);
    let mut live = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = &mut settle, if !live => {
                live = true;
                let Some(service) = service.upgrade() else { return };
                service.set_live(&guild, true);
            }
            next = stream.next() => {
                let Some(received) = next else { return };
                let Some(service) = service.upgrade() else { return };
                match received {
                    Received::Update(update) => service.on_update(&guild, update),
                    Received::Malformed => {
                        tracing::debug!("malformed presence update dropped");
                        service.metrics.malformed.inc();
                    }
                }
            }
        }
    }
}

impl PresenceService {
    /// Applies another gateway's update to a followed guild.
    fn on_update(&self, guild: &Arc<str>, update: PresenceUpdate) {
        if *update.from == *self.own || *update.guild_id != **guild {
            return;
        }
        let now = Instant::now();
        let from: Arc<str> = Arc::from(update.from);
        let mut st = self.state.lock();
        if !self.enabled() {
            // Presence off: only the typing notices of the other gateways count.
            if let PresenceBody::Typing { user } = &update.body {
                self.deliver_typing(&mut st, guild, user, now);
            }
            return;
        }
        if !st.cluster.follows(guild) {
            return;
        }
        match &update.body {
            PresenceBody::Request { to } => {
                if to.as_deref().is_none_or(|to| *to == *self.own) {
                    let users: Vec<_> = st
                        .local
                        .users(guild)
                        .iter()
                        .map(|u| (**u).clone())
                        .collect();
                    if !users.is_empty() || to.is_some() {
                        let seq = st.seqs.get(guild).copied().unwrap_or(0);
                        self.publish(guild, PresenceBody::Full { seq, users });
                    }
                }
            }
            PresenceBody::Typing { user } => self.deliver_typing(&mut st, guild, user, now),
            body => {
                let applied = st.cluster.apply(guild, &from, body, now);
                if applied.resync {
                    self.publish(
                        guild,
                        PresenceBody::Request {
                            to: Some(from.to_string()),
                        },
                    );
                }
                self.changed(&mut st, guild, applied.changes, now);
            }
        }
    }
}
