//! The gateway's Prometheus metrics, encoded in the text format at `/metrics`. Gateway series
//! are named `chat_gateway_*`; the registry also carries what the gateway's dependencies
//! register into it (`chat_bus_*`, `chat_store_*`, `chat_nats_*`, and in embedded mode the
//! in-process workers' `chat_router_*` / `chat_bot_*`). Hot-path metrics keep their label
//! handles resolved up front: counting a frame or a delivery allocates nothing.

use std::time::SystemTime;

use chat_shared::protocol::ServerFrame;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

/// The type of a server frame, as the `type` label of `frames_out_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Hello,
    Message,
    Ack,
    Error,
    Resumed,
    Pong,
    Refreshed,
    // Presence (issue #13).
    Presence,
    PresenceDiff,
    Typing,
}

impl FrameType {
    const ALL: [FrameType; 10] = [
        FrameType::Hello,
        FrameType::Message,
        FrameType::Ack,
        FrameType::Error,
        FrameType::Resumed,
        FrameType::Pong,
        FrameType::Refreshed,
        FrameType::Presence,
        FrameType::PresenceDiff,
        FrameType::Typing,
    ];

    pub fn of(frame: &ServerFrame) -> Self {
        match frame {
            ServerFrame::Hello(_) => FrameType::Hello,
            ServerFrame::Message(_) => FrameType::Message,
            ServerFrame::Ack(_) => FrameType::Ack,
            ServerFrame::Error(_) => FrameType::Error,
            ServerFrame::Resumed(_) => FrameType::Resumed,
            ServerFrame::Pong(_) => FrameType::Pong,
            ServerFrame::Refreshed(_) => FrameType::Refreshed,
            ServerFrame::Presence(_) => FrameType::Presence,
            ServerFrame::PresenceDiff(_) => FrameType::PresenceDiff,
            ServerFrame::Typing(_) => FrameType::Typing,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FrameType::Hello => "hello",
            FrameType::Message => "message",
            FrameType::Ack => "ack",
            FrameType::Error => "error",
            FrameType::Resumed => "resumed",
            FrameType::Pong => "pong",
            FrameType::Refreshed => "refreshed",
            FrameType::Presence => "presence",
            FrameType::PresenceDiff => "presence_diff",
            FrameType::Typing => "typing",
        }
    }
}

/// Every metric of the gateway.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub connections: Gauge,
    pub connections_opened: Counter,
    pub connections_closed: Family<Labels, Counter>,
    pub handshake_refusals: Family<Labels, Counter>,
    pub frames_in: Family<Labels, Counter>,
    /// Handles of `frames_out_total`, one per [`FrameType`] in [`FrameType::ALL`] order.
    frames_out: Vec<Counter>,
    pub sends: Family<Labels, Counter>,
    pub delivery_latency: Histogram,
    pub fanout_size: Histogram,
    pub slow_closes: Counter,
    pub outbound_drops: Counter,
    pub gap_fills: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let frames_out_family = Family::<Labels, Counter>::default();
        let frames_out = FrameType::ALL
            .iter()
            .map(|t| frames_out_family.get_or_create_owned(&vec![("type", t.as_str().to_owned())]))
            .collect();
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            connections_closed: Family::default(),
            handshake_refusals: Family::default(),
            frames_in: Family::default(),
            frames_out,
            sends: Family::default(),
            // 0.1 ms to about 6.5 s.
            delivery_latency: Histogram::new(exponential_buckets(0.000_1, 2.0, 17)),
            fanout_size: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            slow_closes: Counter::default(),
            outbound_drops: Counter::default(),
            gap_fills: Counter::default(),
        };
        m.register_own(&frames_out_family);
        m
    }

    fn register_own(&self, frames_out: &Family<Labels, Counter>) {
        let mut root = self.registry.lock();
        let registry = root.sub_registry_with_prefix("chat_gateway");
        registry.register(
            "connections",
            "Open WebSocket connections",
            self.connections.clone(),
        );
        registry.register(
            "connections_opened",
            "WebSocket connections opened",
            self.connections_opened.clone(),
        );
        registry.register(
            "connections_closed",
            "WebSocket connections closed, by close code",
            self.connections_closed.clone(),
        );
        registry.register(
            "handshake_refusals",
            "Refused /ws handshakes, by reason (the error code of the refusal)",
            self.handshake_refusals.clone(),
        );
        registry.register(
            "frames_in",
            "Client frames received, by type",
            self.frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "Server frames written to sockets, by type",
            frames_out.clone(),
        );
        registry.register(
            "sends",
            "Sends answered, by outcome (ack or error code)",
            self.sends.clone(),
        );
        registry.register_with_unit(
            "delivery_latency",
            "Time from a live message's log append (its ts) to its write to a socket",
            Unit::Seconds,
            self.delivery_latency.clone(),
        );
        registry.register(
            "fanout_size",
            "Local recipients per delivered entry",
            self.fanout_size.clone(),
        );
        registry.register(
            "slow_consumer_closes",
            "Connections closed with 4009 (outbound queue full)",
            self.slow_closes.clone(),
        );
        registry.register(
            "outbound_drops",
            "Frames not queued because a connection's outbound queue was full",
            self.outbound_drops.clone(),
        );
        registry.register(
            "gap_fills",
            "Deliveries missed on the bus and filled from the log",
            self.gap_fills.clone(),
        );
    }

    /// Lets a dependency or an in-process worker register its metrics beside the gateway's.
    pub fn register_with<R>(&self, register: impl FnOnce(&mut Registry) -> R) -> R {
        register(&mut self.registry.lock())
    }

    /// Counts one occurrence under a single label.
    pub fn count(family: &Family<Labels, Counter>, key: &'static str, value: &str) {
        family.get_or_create(&vec![(key, value.to_owned())]).inc();
    }

    /// Counts a frame written to a socket; a live message also records how long it took since
    /// it was appended (`appended_at`).
    pub fn frame_written(&self, frame: FrameType, appended_at: Option<SystemTime>) {
        if let Some(counter) = self.frames_out.get(frame as usize) {
            counter.inc();
        }
        if let Some(at) = appended_at {
            let latency = SystemTime::now().duration_since(at).unwrap_or_default();
            self.delivery_latency.observe(latency.as_secs_f64());
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry.lock()).is_err() {
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
