//! Issue #14 item 2 over real processes: a guild flooded past its queue answers its own senders
//! `rate_limited` and never holds up the sends of another guild on the same router. Before the
//! fix the router's ingress loop waited for room in the full guild's queue, so the quiet
//! guild's sends waited behind the flood until they timed out.

mod support;

use std::time::{Duration, Instant};

use chat_shared::bus::nats::partitions::partition_of;
use chat_shared::bus::{Bus, Visibility};
use chat_shared::protocol::ErrorCode;
use futures::future::join_all;
use support::*;
use testkit::NatsServer;

/// Sends fired at once into the flooded guild, from each of [`GATEWAYS`] (the router queues
/// 1024 per guild; one gateway keeps at most two batches of 512 open per partition, so only
/// several gateways together can fill a guild's queue).
const FLOOD: usize = 2_000;
/// Gateways (bus connections) flooding the guild.
const GATEWAYS: usize = 3;
/// How long the submitter waits for any answer.
const TIMEOUT_MS: u64 = 5_000;
/// What a quiet guild's send may take while the other guild is flooded.
const QUIET_LATENCY: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_guild_refuses_its_own_sends_and_never_stalls_another() {
    let nats = NatsServer::start();
    let _router = router(&nats, &[]).await;
    let mut gateways = Vec::new();
    for _ in 0..GATEWAYS {
        gateways.push(gateway_bus(&nats, TIMEOUT_MS).await);
    }
    let bus = gateways[0].clone();
    let (hot, quiet) = ("hot", "quiet");
    assert_ne!(partition_of(Some(hot)), partition_of(Some(quiet)));
    bus.submit(send(quiet, "warm"))
        .await
        .unwrap()
        .expect("warm-up acked");

    let flood: Vec<_> = (0..FLOOD * GATEWAYS)
        .map(|i| {
            let bus = gateways[i % GATEWAYS].clone();
            tokio::spawn(async move { bus.submit(send(hot, &format!("hot-{i}"))).await })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        let outcome = bus.submit(send(quiet, &format!("quiet-{i}"))).await;
        slowest = slowest.max(started.elapsed());
        assert!(matches!(outcome, Ok(Ok(_))), "quiet send {i}: {outcome:?}");
    }
    eprintln!("quiet guild's slowest send during the flood: {slowest:?}");
    assert!(
        slowest < QUIET_LATENCY,
        "the quiet guild waited {slowest:?}"
    );

    let mut acked = Vec::new();
    let mut refused = 0;
    for (i, result) in join_all(flood).await.into_iter().enumerate() {
        match result.expect("flood task") {
            Ok(Ok(ack)) => acked.push((format!("hot-{i}"), ack.seq)),
            Ok(Err(ErrorCode::RateLimited)) => refused += 1,
            other => panic!("hot-{i}: {other:?}"),
        }
    }
    assert!(refused > 0, "the flooded guild refused some of its sends");
    let log = bus
        .read_after(hot, 0, FLOOD * GATEWAYS, Visibility::All)
        .await
        .expect("read the log");
    assert_eq!(
        log.entries.len(),
        acked.len(),
        "exactly the acked sends are stored"
    );
    acked.sort_by_key(|(_, seq)| *seq);
    for ((id, seq), entry) in acked.iter().zip(&log.entries) {
        assert_eq!(
            (id.as_str(), *seq),
            (entry.message.message_id.as_str(), entry.seq)
        );
    }
}
