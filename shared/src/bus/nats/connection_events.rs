//! NATS connection events of this process: `chat_nats_connection_events_total{event}` (every
//! event async-nats reports: connected, disconnected, lame duck mode, slow consumer, errors…)
//! and `chat_nats_reconnects_total` (connections re-established after a loss). The counters
//! are process-wide, because the event callback is set where the connection is opened; every
//! binary registers them with [`register`], whether it uses NATS or not (then they stay 0).

use std::sync::LazyLock;

use async_nats::Event;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type EventLabel = [(&'static str, &'static str); 1];

struct NatsEvents {
    events: Family<EventLabel, Counter>,
    reconnects: Counter,
}

static EVENTS: LazyLock<NatsEvents> = LazyLock::new(|| {
    let events = Family::<EventLabel, Counter>::default();
    for name in ["connected", "disconnected"] {
        let _ = events.get_or_create(&[("event", name)]);
    }
    NatsEvents {
        events,
        reconnects: Counter::default(),
    }
});

/// Registers the `chat_nats_*` counters in `registry`, and the bus's dropped-payload counter
/// ([`super::dropped_metric`]), so every binary exports both with this one call.
pub fn register(registry: &mut Registry) {
    super::dropped_metric::register(registry);
    let sub = registry.sub_registry_with_prefix("chat_nats");
    sub.register(
        "connection_events",
        "NATS connection events, by event",
        EVENTS.events.clone(),
    );
    sub.register(
        "reconnects",
        "NATS connections re-established after a loss",
        EVENTS.reconnects.clone(),
    );
}

/// Reconnects counted so far in this process.
pub fn reconnects() -> u64 {
    EVENTS.reconnects.get()
}

/// Counts one event; `reconnect` when a `Connected` follows an earlier connection.
pub(crate) fn record(event: &Event, reconnect: bool) {
    EVENTS
        .events
        .get_or_create(&[("event", label(event))])
        .inc();
    if reconnect {
        EVENTS.reconnects.inc();
    }
}

fn label(event: &Event) -> &'static str {
    match event {
        Event::Connected => "connected",
        Event::Disconnected => "disconnected",
        Event::LameDuckMode => "lame_duck_mode",
        Event::Draining => "draining",
        Event::Closed => "closed",
        Event::SlowConsumer(_) => "slow_consumer",
        Event::ServerError(_) => "server_error",
        Event::ClientError(_) => "client_error",
    }
}
