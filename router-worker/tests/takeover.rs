//! Ingress partition ownership over real processes: two `router-worker`s share the 16
//! partitions; the owner of half of them is killed (SIGKILL) under a steady stream of sends
//! to every partition. Every send is answered once — acked, or `server_error`/unavailable
//! while its partition has no owner — every acked send is in its guild's log at its seq, none
//! twice, and every partition serves again within `TAKEOVER_BOUND` of the kill.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::Bus;
use chat_shared::bus::nats::{NatsBus, TAKEOVER_BOUND};
use support::*;
use testkit::NatsServer;

/// Time between two sends of one guild.
const PACE: Duration = Duration::from_millis(50);
/// How long the sends go on before and after the kill.
const BEFORE_KILL: Duration = Duration::from_secs(2);

/// What one send came to, and when it was answered.
struct Outcome {
    id: String,
    answered: Instant,
    seq: Option<u64>,
}

async fn steady_sends(bus: Arc<NatsBus>, guild: String, until: Instant) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let id = format!("{guild}-{n}");
        n += 1;
        let seq = match bus.submit(send(&guild, &id)).await {
            Ok(Ok(ack)) => {
                assert_eq!(ack.message_id, id);
                Some(ack.seq)
            }
            Ok(Err(code)) => {
                assert_eq!(code.as_str(), "server_error", "{id}");
                None
            }
            Err(_unavailable_or_timeout) => None,
        };
        outcomes.push(Outcome {
            id,
            answered: Instant::now(),
            seq,
        });
        tokio::time::sleep(PACE).await;
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_routers_partitions_are_taken_over_within_the_bound() {
    let nats = NatsServer::start();
    let mut first = router(&nats, &[]).await;
    let second = router(&nats, &[]).await;
    assert!(
        second
            .wait_for_output("took an ingress partition", Duration::from_secs(20))
            .await,
        "the second router never got a share:\n{}",
        second.log_tail(30)
    );
    let bus = gateway_bus(&nats, 1_000).await;
    let guilds = guild_per_partition("g");
    let kill_at = Instant::now() + BEFORE_KILL;
    let until = kill_at + TAKEOVER_BOUND + Duration::from_secs(2);
    let tasks: Vec<_> = guilds
        .iter()
        .map(|g| tokio::spawn(steady_sends(bus.clone(), g.clone(), until)))
        .collect();
    tokio::time::sleep_until(kill_at.into()).await;
    first.kill();
    let killed = Instant::now();

    let mut longest_outage = Duration::ZERO;
    for (guild, task) in guilds.iter().zip(tasks) {
        let outcomes = task.await.expect("sender");
        let last_failure = outcomes
            .iter()
            .filter(|o| o.seq.is_none())
            .map(|o| o.answered)
            .max();
        if let Some(at) = last_failure {
            let outage = at.saturating_duration_since(killed);
            longest_outage = longest_outage.max(outage);
            assert!(
                outage < TAKEOVER_BOUND,
                "{guild} still failing {outage:?} after the kill"
            );
        }
        assert!(
            outcomes.last().is_some_and(|o| o.seq.is_some()),
            "{guild} serves again"
        );
        let acked: Vec<_> = (outcomes.iter())
            .filter_map(|o| o.seq.map(|seq| (o.id.clone(), seq)))
            .collect();
        check_log(&bus, guild, &acked).await;
    }
    eprintln!("partition takeover: longest outage after the kill {longest_outage:?}");
}
