//! `chat_bus_dropped_payloads_total{kind}`: bus payloads this process dropped because they did
//! not decode (garbage or another version on a subject), by consumer kind — the same counts
//! as `NatsBus::dropped_payloads()`, summed over the process's buses, for `/metrics`. Every
//! kind is exported from 0. Registered with the NATS connection counters
//! ([`super::connection_events::register`]).

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::payload::DropKind;

type KindLabel = [(&'static str, &'static str); 1];

const KINDS: [DropKind; 5] = [
    DropKind::Ingress,
    DropKind::Delivery,
    DropKind::UserEvents,
    DropKind::BotJobs,
    DropKind::Log,
];

static DROPPED: LazyLock<Family<KindLabel, Counter>> = LazyLock::new(|| {
    let family = Family::<KindLabel, Counter>::default();
    for kind in KINDS {
        let _ = family.get_or_create(&[("kind", label(kind))]);
    }
    family
});

/// Registers `chat_bus_dropped_payloads_total` in `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "chat_bus_dropped_payloads",
        "Bus payloads dropped because they did not decode, by consumer kind",
        DROPPED.clone(),
    );
}

/// Counts one dropped payload.
pub(crate) fn record(kind: DropKind) {
    DROPPED.get_or_create(&[("kind", label(kind))]).inc();
}

fn label(kind: DropKind) -> &'static str {
    match kind {
        DropKind::Ingress => "ingress",
        DropKind::Delivery => "delivery",
        DropKind::UserEvents => "user_events",
        DropKind::BotJobs => "bot_jobs",
        DropKind::Log => "log",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn exported(registry: &Registry, kind: &str) -> u64 {
        let mut text = String::new();
        encode(&mut text, registry).expect("the registry encodes");
        let prefix = format!("chat_bus_dropped_payloads_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no series for {kind} in:\n{text}"))
    }

    #[test]
    fn every_kind_is_exported_and_a_drop_counts_once() {
        let mut registry = Registry::default();
        register(&mut registry);
        for kind in KINDS {
            exported(&registry, label(kind));
        }
        let before = exported(&registry, "bot_jobs");

        record(DropKind::BotJobs);

        assert_eq!(exported(&registry, "bot_jobs"), before + 1);
    }
}
