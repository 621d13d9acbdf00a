//! The in-memory [`PresenceBus`] of embedded mode: one fan-out per guild with subscribers
//! ([`Fanout`]); a guild whose subscribers are all gone is dropped on the next publish.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;

use crate::bus::memory_fanout::Fanout;
use crate::bus::presence::{PresenceBus, PresenceUpdate, Received};
use crate::bus::{BoxStream, BusError};

/// Updates a slow subscriber may lag behind before it loses some (it resyncs by `seq`).
const CHANNEL: usize = 4096;

/// Updates go out behind an `Arc`, one clone per subscriber.
#[derive(Default)]
pub struct MemoryPresence {
    guilds: Mutex<HashMap<String, Fanout<Arc<PresenceUpdate>>>>,
}

#[async_trait::async_trait]
impl PresenceBus for MemoryPresence {
    async fn publish(&self, update: &PresenceUpdate) -> Result<(), BusError> {
        let mut guilds = self.guilds.lock();
        if let Some(fanout) = guilds.get_mut(&update.guild_id)
            && !fanout.publish(&Arc::new(update.clone()))
        {
            guilds.remove(&update.guild_id);
        }
        Ok(())
    }

    async fn subscribe(&self, guild_id: &str) -> Result<BoxStream<Received>, BusError> {
        let updates = self
            .guilds
            .lock()
            .entry(guild_id.to_owned())
            .or_insert_with(|| Fanout::new(CHANNEL))
            .subscribe();
        // A lagging subscriber misses some; the seq gap makes it ask for full lists again.
        Ok(updates
            .map(|update| Received::Update(Arc::unwrap_or_clone(update)))
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
