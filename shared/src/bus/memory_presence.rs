//! The in-memory [`PresenceBus`] of embedded mode: one broadcast channel per guild with
//! subscribers; a channel whose subscribers are all gone is dropped on the next publish.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use crate::bus::presence::{PresenceBus, PresenceUpdate, Received};
use crate::bus::{BoxStream, BusError};

/// Updates a slow subscriber may lag behind before it loses some (it resyncs by `seq`).
const CHANNEL: usize = 4096;

/// Updates are broadcast behind an `Arc`: a channel allocates all its slots up front, so its
/// slot size times [`CHANNEL`] is what each guild holds (~0.65 MB with inline updates).
#[derive(Default)]
pub struct MemoryPresence {
    guilds: Mutex<HashMap<String, broadcast::Sender<Arc<PresenceUpdate>>>>,
}

#[async_trait::async_trait]
impl PresenceBus for MemoryPresence {
    async fn publish(&self, update: &PresenceUpdate) -> Result<(), BusError> {
        let mut guilds = self.guilds.lock();
        if let Some(tx) = guilds.get(&update.guild_id)
            && tx.send(Arc::new(update.clone())).is_err()
        {
            guilds.remove(&update.guild_id);
        }
        Ok(())
    }

    async fn subscribe(&self, guild_id: &str) -> Result<BoxStream<Received>, BusError> {
        let rx = self
            .guilds
            .lock()
            .entry(guild_id.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL).0)
            .subscribe();
        // A lagged receiver skips ahead; the seq gap makes it ask for full lists again.
        Ok(BroadcastStream::new(rx)
            .filter_map(|item| async move {
                item.ok()
                    .map(|update| Received::Update(Arc::unwrap_or_clone(update)))
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::presence::PresenceBody;

    fn update(guild: &str) -> PresenceUpdate {
        PresenceUpdate {
            v: crate::bus::INTERNAL_VERSION,
            guild_id: guild.into(),
            from: "gw".into(),
            body: PresenceBody::Heartbeat { seq: 1 },
        }
    }

    #[tokio::test]
    async fn a_subscriber_gets_its_guild_only() {
        let bus = MemoryPresence::default();
        let mut g1 = bus.subscribe("g1").await.expect("subscribes");
        bus.publish(&update("g2")).await.expect("publishes");
        bus.publish(&update("g1")).await.expect("publishes");
        assert_eq!(g1.next().await, Some(Received::Update(update("g1"))));
    }
}
