//! Presence and typing (issue #13) across two gateway processes on real NATS and Redis: the
//! shared cases with clients spread over both gateways, a gateway killed with SIGKILL (its
//! users gone within `PRESENCE_TTL_MS`, the others unaffected), and a NATS restart (presence
//! converges without restarting a gateway).

mod presence_cases;
mod support;

use std::time::{Duration, Instant};

use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::protocol::identity::Role;
use presence_cases as cases;
use support::distributed::{Distributed, Topology};
use support::presence::Tracker;
use support::{Scope, user};

async fn deploy() -> Distributed {
    Distributed::start_with(Topology {
        bots: 0,
        routers: 1,
        env: cases::env(),
        ..Topology::default()
    })
    .await
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let d = deploy().await;
                cases::$case(&d).await;
            }
        )*
    };
}

cases!(
    join_leave_diff_order,
    two_connections_count_once,
    typing_reaches_others_only,
    non_members_see_nothing,
    large_guild_truncated_and_coalesced,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_change_live() {
    let d = deploy().await;
    let bus = NatsBus::connect(&d.nats.url(), &NatsConfig::default())
        .await
        .expect("bus");
    cases::membership_change_live(&d, bus.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_gateway_users_gone_within_the_ttl() {
    let mut d = deploy().await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let dan = user(&d, &s.user_id("dan"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let _dan = dan.connect(&d, 0).await;
    let _b = bob.connect(&d, 1).await;
    let mut at = Tracker::default();
    let all = [
        ann.info.id.as_str(),
        bob.info.id.as_str(),
        dan.info.id.as_str(),
    ];
    at.until_online(&mut a, &g, &all).await;
    d.gateways[1].service.kill();
    let killed = Instant::now();
    at.until_online(&mut a, &g, &[&ann.info.id, &dan.info.id])
        .await;
    let took = killed.elapsed();
    // The TTL, plus the heartbeat period it may have just missed, plus load margin.
    assert!(took <= cases::TTL + Duration::from_secs(3), "took {took:?}");
    // A new gateway on the same port leaves no phantom: bob is not back.
    d.restart_gateway(1).await;
    at.drain(&mut a, Duration::from_secs(1)).await;
    assert!(!at.view(&g).online.contains(&bob.info.id), "{at:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_converges() {
    let d = deploy().await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let carol = user(&d, &s.user_id("carol"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let _b = bob.connect(&d, 1).await;
    let mut at = Tracker::default();
    at.until_online(&mut a, &g, &[&ann.info.id, &bob.info.id])
        .await;
    d.nats.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.nats.start_again();
    // Carol joins on the other gateway once it takes handshakes again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let _c = loop {
        match carol.try_connect(&d, 1, Default::default()).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(refusal) => panic!("gateway 1 never took a handshake again: {refusal:?}"),
        }
    };
    let all = [
        ann.info.id.as_str(),
        bob.info.id.as_str(),
        carol.info.id.as_str(),
    ];
    at.until_online(&mut a, &g, &all).await;
}
