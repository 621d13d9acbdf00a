//! The endpoint's own series, labelled by transport: sessions opened, upgrades, packets in,
//! recoveries, and what was ignored or refused (by reason). Connections, sends and handshake
//! refusals are counted in the gateway's shared series too.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::socketio::engine::Transport;

type Labels = Vec<(&'static str, &'static str)>;

pub struct SioMetrics {
    /// Engine.IO sessions held now (the engine keeps it).
    pub sessions: Gauge,
    sessions_opened: Family<Labels, Counter>,
    upgrades: Counter,
    packets_in: Family<Labels, Counter>,
    events_in: Family<Labels, Counter>,
    ignored: Family<Labels, Counter>,
    recoveries: Family<Labels, Counter>,
}

impl SioMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = SioMetrics {
            sessions: Gauge::default(),
            sessions_opened: Family::default(),
            upgrades: Counter::default(),
            packets_in: Family::default(),
            events_in: Family::default(),
            ignored: Family::default(),
            recoveries: Family::default(),
        };
        let sub = registry.sub_registry_with_prefix("chat_gateway_socketio");
        sub.register(
            "sessions_opened",
            "Engine.IO sessions opened, by first transport",
            metrics.sessions_opened.clone(),
        );
        sub.register(
            "sessions",
            "Engine.IO sessions held now (polling and WebSocket)",
            metrics.sessions.clone(),
        );
        sub.register(
            "upgrades",
            "Polling sessions upgraded to WebSocket",
            metrics.upgrades.clone(),
        );
        sub.register(
            "packets_in",
            "Engine.IO packets received, by transport",
            metrics.packets_in.clone(),
        );
        sub.register(
            "events_in",
            "Socket.IO events received, by name",
            metrics.events_in.clone(),
        );
        sub.register(
            "ignored",
            "Requests and packets refused or ignored, by reason",
            metrics.ignored.clone(),
        );
        sub.register(
            "recoveries",
            "Connection state recoveries, by outcome",
            metrics.recoveries.clone(),
        );
        metrics
    }

    pub fn opened(&self, transport: Transport) {
        self.sessions_opened
            .get_or_create(&vec![("transport", transport.as_str())])
            .inc();
    }

    pub fn upgraded(&self) {
        self.upgrades.inc();
    }

    pub fn packet_in(&self, transport: Transport) {
        self.packets_in
            .get_or_create(&vec![("transport", transport.as_str())])
            .inc();
    }

    pub fn event_in(&self, name: &'static str) {
        self.events_in.get_or_create(&vec![("event", name)]).inc();
    }

    pub fn ignored(&self, reason: &'static str) {
        self.ignored.get_or_create(&vec![("reason", reason)]).inc();
    }

    pub fn recoveries(&self, recovered: bool) {
        let outcome = if recovered {
            "recovered"
        } else {
            "not_recovered"
        };
        self.recoveries
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }
}
