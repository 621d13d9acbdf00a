//! The presence metrics (`chat_presence_*`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Default, Clone)]
pub struct PresenceMetrics {
    /// Presence updates from the bus that did not decode (dropped).
    pub malformed: Counter,
    /// Updates this gateway could not hand to the bus (the receivers resync by `seq`).
    pub publish_failures: Counter,
    /// Presence and typing frames not queued because a connection's queue was full.
    pub frames_dropped: Counter,
    /// Guilds this gateway follows (one bus subscription each).
    pub followed_guilds: Gauge,
}

impl PresenceMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = PresenceMetrics::default();
        let r = registry.sub_registry_with_prefix("chat_presence");
        r.register(
            "malformed_updates",
            "Presence updates from the bus dropped because they did not decode",
            m.malformed.clone(),
        );
        r.register(
            "publish_failures",
            "Presence updates that could not be published",
            m.publish_failures.clone(),
        );
        r.register(
            "frames_dropped",
            "Presence and typing frames dropped on a full connection queue",
            m.frames_dropped.clone(),
        );
        r.register(
            "followed_guilds",
            "Guilds followed for presence (one subscription each)",
            m.followed_guilds.clone(),
        );
        m
    }
}
