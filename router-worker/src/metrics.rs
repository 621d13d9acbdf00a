//! The router's Prometheus metrics: `chat_router_sends_total{outcome}` and
//! `chat_router_route_duration_seconds`. The log append itself is timed by the instrumented
//! bus (`chat_bus_call_duration_seconds{op="append"}`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

/// Counters and timings of routed sends.
#[derive(Debug)]
pub struct RouterMetrics {
    /// Sends decided, by outcome (`ack` or the error code).
    pub routed: Family<Labels, Counter>,
    /// Time from taking a send to answering it.
    pub route_seconds: Histogram,
}

impl RouterMetrics {
    /// Metrics registered under `chat_router_` in `registry`.
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = RouterMetrics {
            routed: Family::default(),
            route_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        };
        let sub = registry.sub_registry_with_prefix("chat_router");
        sub.register("sends", "Sends decided, by outcome", metrics.routed.clone());
        sub.register_with_unit(
            "route_duration",
            "Time to decide, store, publish and answer a send",
            Unit::Seconds,
            metrics.route_seconds.clone(),
        );
        metrics
    }

    pub fn record(&self, outcome: &str, seconds: f64) {
        self.routed
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
        self.route_seconds.observe(seconds);
    }
}

impl Default for RouterMetrics {
    fn default() -> Self {
        Self::registered(&mut Registry::default())
    }
}
