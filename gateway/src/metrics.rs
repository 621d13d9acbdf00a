//! The gateway's Prometheus metrics, encoded in the text format at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub connections_opened: Counter,
    pub connections_closed: Family<Labels, Counter>,
    pub handshake_refusals: Family<Labels, Counter>,
    pub frames_in: Family<Labels, Counter>,
    pub sends: Family<Labels, Counter>,
    pub fanout_size: Histogram,
    pub slow_closes: Counter,
    pub gap_fills: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chat_gateway");
        let m = Metrics {
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            connections_closed: Family::default(),
            handshake_refusals: Family::default(),
            frames_in: Family::default(),
            sends: Family::default(),
            fanout_size: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            slow_closes: Counter::default(),
            gap_fills: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        registry.register(
            "connections_opened",
            "WebSocket connections opened",
            m.connections_opened.clone(),
        );
        registry.register(
            "connections_closed",
            "WebSocket connections closed, by close code",
            m.connections_closed.clone(),
        );
        registry.register(
            "handshake_refusals",
            "Refused /ws handshakes, by reason",
            m.handshake_refusals.clone(),
        );
        registry.register(
            "frames_in",
            "Client frames received, by type",
            m.frames_in.clone(),
        );
        registry.register(
            "sends",
            "Sends answered, by outcome (ack or error code)",
            m.sends.clone(),
        );
        registry.register(
            "fanout_size",
            "Local recipients per delivered entry",
            m.fanout_size.clone(),
        );
        registry.register(
            "slow_consumer_closes",
            "Connections closed with 4009 (outbound queue full)",
            m.slow_closes.clone(),
        );
        registry.register(
            "gap_fills",
            "Deliveries missed on the bus and filled from the log",
            m.gap_fills.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one occurrence under a single label.
    pub fn count(family: &Family<Labels, Counter>, key: &'static str, value: &str) {
        family.get_or_create(&vec![(key, value.to_owned())]).inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
