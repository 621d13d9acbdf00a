//! What the router's process tests share: real `router-worker` processes on a real NATS, and
//! an in-process NATS bus standing in for a gateway.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::nats::partitions::{INGRESS_PARTITIONS, partition_of};
use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::{INTERNAL_VERSION, SendRequest};
use chat_shared::protocol::identity::{Role, UserInfo};
use testkit::{ChildService, NatsServer, cargo_bin, free_port};

/// How long a router may take to start.
const READY: Duration = Duration::from_secs(60);

/// Starts a router-worker process and waits until it serves the ingress.
pub async fn router(nats: &NatsServer, env: &[(&str, &str)]) -> ChildService {
    let mut vars = vec![
        ("NATS_URL".to_owned(), nats.url()),
        (
            "LISTEN_ADDR".to_owned(),
            format!("127.0.0.1:{}", free_port()),
        ),
        ("JWT_SECRET".to_owned(), "router-test-secret".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ];
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let service = ChildService::spawn(cargo_bin("router-worker"), Vec::<String>::new(), vars);
    assert!(
        service
            .wait_for_output("router worker serving", READY)
            .await,
        "router did not start:\n{}",
        service.log_tail(30)
    );
    service
}

/// A bus for submitting sends, as a gateway has.
pub async fn gateway_bus(nats: &NatsServer, ingress_timeout_ms: u64) -> Arc<NatsBus> {
    let config = NatsConfig {
        ingress_timeout_ms,
        ..NatsConfig::default()
    };
    NatsBus::connect(&nats.url(), &config)
        .await
        .expect("gateway bus")
}

/// One guild id per ingress partition, from `prefix`.
pub fn guild_per_partition(prefix: &str) -> Vec<String> {
    let mut found = BTreeMap::new();
    let mut i = 0;
    while found.len() < INGRESS_PARTITIONS as usize {
        let guild = format!("{prefix}{i}");
        found.entry(partition_of(Some(&guild))).or_insert(guild);
        i += 1;
    }
    found.into_values().collect()
}

/// A member's send with a messageId.
pub fn send(guild: &str, id: &str) -> SendRequest {
    SendRequest {
        v: INTERNAL_VERSION,
        sender: UserInfo::new("u1", "Ann", Role::Member),
        guild_id: Some(guild.to_owned()),
        text: Some(format!("text of {id}")),
        admin_only: false,
        request_bot: false,
        message_id: Some(id.to_owned()),
        member_verified: true,
    }
}

/// Every acked `(messageId, seq)` is in the guild's log at its seq; no messageId is stored
/// twice.
pub async fn check_log(bus: &NatsBus, guild: &str, acked: &[(String, u64)]) {
    let log =
        chat_shared::bus::Bus::read_after(bus, guild, 0, 10_000, chat_shared::bus::Visibility::All)
            .await
            .expect("read the log");
    let mut stored = std::collections::HashMap::new();
    for entry in &log.entries {
        let previous = stored.insert(entry.message.message_id.as_str(), entry.seq);
        assert!(
            previous.is_none(),
            "{} stored twice",
            entry.message.message_id
        );
    }
    for (id, seq) in acked {
        assert_eq!(
            stored.get(id.as_str()),
            Some(seq),
            "acked {id} is in the log at its seq"
        );
    }
}
