//! One bus subscription of the hub (a guild's feed or the admin-only feed) as a task: it
//! subscribes (retrying), reports when it is live, and hands the hub each entry — a guild's in
//! log order, filling a gap it shows from the log first (once for the whole gateway) — and
//! reads what was published meanwhile after a reconnect or a new subscription.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::{Bus, LogEntry, Topic, Visibility};
use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Hub;

/// Entries read per gap fill.
const GAP_FILL_LIMIT: usize = 1000;

/// A running subscription: stop it, wait for it to be live, ask it to read what it missed.
pub(super) struct Feed {
    pub(super) stop: CancellationToken,
    pub(super) ready: watch::Receiver<bool>,
    /// Read what may have been missed (after a bus reconnect).
    pub(super) resync: Arc<Notify>,
}

/// Starts the subscription task of `topic` for `hub`.
pub(super) fn start(hub: &Arc<Hub>, topic: Topic) -> Feed {
    let stop = CancellationToken::new();
    let (ready_tx, ready) = watch::channel(false);
    let resync = Arc::new(Notify::new());
    let span = tracing::info_span!("feed", topic = ?topic);
    let feed = FeedTask {
        hub: Arc::downgrade(hub),
        bus: hub.bus.clone(),
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
                            fan_out_in_order(&hub, self.bus.as_ref(), guild, last_seq, entry).await;
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
async fn fan_out_in_order(
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
