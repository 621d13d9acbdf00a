//! Fault tests on a distributed deployment of real processes: NATS restarted under traffic, a
//! gateway killed, a router killed mid-stream, Redis stopped, and live session events. The fault
//! tests run twice: on one NATS server (`single::…`) and on a 3-node JetStream cluster with
//! `NATS_REPLICAS=3` (`cluster::…`, the whole cluster restarted in the NATS case).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::{Bus, UserEvent};
use chat_shared::protocol::ServerFrame;
use chat_shared::protocol::identity::Role;
use chat_shared::store::Session;
use serde_json::json;
use support::client::{Client, Connect};
use support::distributed::{Distributed, Topology};
use support::{Deployment, Scope, http, user};

/// Each named test as `single::name` (one NATS server) and `cluster::name` (3 nodes, R3).
macro_rules! on_one_server_and_a_cluster {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(1).await
            })*
        }
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(3).await
            })*
        }
    };
}

on_one_server_and_a_cluster!(
    nats_restart_loses_no_acked_message,
    killed_gateway_clients_resume_elsewhere,
    killed_router_never_acks_and_loses,
    redis_outage_keeps_chats_and_refuses_new_handshakes,
);

/// Reads frames until `resumed` for `guild`, collecting every message of that guild.
async fn resume(client: &mut Client, guild: &str, after: u64) -> Vec<(u64, String)> {
    let mut got: Vec<(u64, String)> = Vec::new();
    // A replay the gateway could not finish (its log read failed right after a restart) is
    // answered `server_error`, then `resumed`: resume again from what arrived, as a client does.
    for _ in 0..RESUME_ATTEMPTS {
        let from = got.last().map_or(after, |(seq, _)| *seq);
        client
            .send_value(json!({"type": "resume", "positions": {guild: from}}))
            .await;
        let mut failed = false;
        loop {
            match client.recv().await {
                ServerFrame::Message(m) if m.message.guild_id == guild => {
                    got.push((m.seq, m.message.message_id.clone()))
                }
                ServerFrame::Error(e) if e.guild_id.as_deref() == Some(guild) => {
                    eprintln!("resume of {guild} from {from} failed: {e:?}; resuming again");
                    failed = true;
                }
                ServerFrame::Resumed(r) if r.guild_id == guild => break,
                _ => {}
            }
        }
        if !failed {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("resume of {guild} failed {RESUME_ATTEMPTS} times");
}

/// Resumes a test tries before it fails.
const RESUME_ATTEMPTS: usize = 20;

/// Sends `text` with `id` until acked (resending with the same id, as clients do), or gives
/// up after `within`.
async fn send_until_acked(
    client: &mut Client,
    guild: &str,
    id: &str,
    within: Duration,
) -> Option<u64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match client
            .request(json!({"guildId": guild, "text": id, "messageId": id}))
            .await
        {
            Ok(ack) => return Some(ack.seq),
            Err(e) => {
                assert!(
                    matches!(e.code.as_str(), "server_error" | "rate_limited"),
                    "unexpected {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    None
}

/// `SAVE` with plain `redis-cli`: the testkit Redis persists nothing by itself, and loads
/// this snapshot when started again.
fn snapshot(d: &Distributed) {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &d.redis.port().to_string(), "SAVE"])
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli SAVE: {out:?}");
}

async fn readyz(d: &Distributed, i: usize) -> u16 {
    match http().get(format!("{}/readyz", d.gateway(i))).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_readyz(d: &Distributed, i: usize, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(d, i).await != status {
        assert!(
            Instant::now() < deadline,
            "/readyz of gateway {i} never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn nats_restart_loses_no_acked_message(nats_nodes: usize) {
    let d = Distributed::start_with(Topology::on_nats(nats_nodes)).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let mut b = bob.connect(&d, 1).await;
    let mut acked = HashMap::new();
    for i in 0..30 {
        if i == 10 {
            d.nats.stop();
            for n in 0..3 {
                let id = s.user_id(&format!("down{n}"));
                let refused = a
                    .request(json!({"guildId": g, "text": id, "messageId": id}))
                    .await;
                assert_eq!(
                    refused
                        .expect_err("no ack while NATS is down")
                        .code
                        .as_str(),
                    "server_error"
                );
            }
            d.nats.start_again();
        }
        let id = s.user_id(&format!("m{i}"));
        let seq = send_until_acked(&mut a, &g, &id, Duration::from_secs(60))
            .await
            .expect("acked after NATS returns");
        acked.insert(id, seq);
    }
    let mut seen: Vec<(u64, String)> = Vec::new();
    while let Some(frame) = next_message_now(&mut b).await {
        seen.push(frame);
    }
    let last_live = seen.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
    seen.extend(resume(&mut b, &g, last_live).await);
    let mut b2 = bob.connect(&d, 0).await;
    let from_zero = resume(&mut b2, &g, 0).await;
    let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    let unique: HashSet<&String> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no message shown twice");
    for (id, seq) in &acked {
        assert!(
            unique.contains(id),
            "acked {id} (seq {seq}) was neither delivered nor resumed"
        );
    }
    let logged: HashSet<String> = from_zero.into_iter().map(|(_, id)| id).collect();
    assert!(
        acked.keys().all(|id| logged.contains(id)),
        "every acked message is in the log"
    );
    assert_eq!(
        logged.len(),
        acked.len(),
        "resends never stored a message twice"
    );
}

/// Messages already received or arriving within a short settle time (the live path).
async fn next_message_now(client: &mut Client) -> Option<(u64, String)> {
    client.round_trip().await;
    let frame = tokio::time::timeout(Duration::from_millis(300), client.message())
        .await
        .ok()?;
    Some((frame.seq, frame.message.message_id.clone()))
}

async fn killed_gateway_clients_resume_elsewhere(nats_nodes: usize) {
    let mut d = Distributed::start_with(Topology::on_nats(nats_nodes)).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let mut b = bob.connect(&d, 1).await;
    let first = b.post(&g, "before the crash").await.expect("ack");
    assert_eq!(a.message().await.seq, first.seq);
    d.gateways[0].service.kill();
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(
            b.post(&g, &format!("while down {i}"))
                .await
                .expect("ack")
                .seq,
        );
    }
    let mut a = ann.connect(&d, 1).await;
    let replayed: Vec<u64> = resume(&mut a, &g, first.seq)
        .await
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(replayed, missed);
    d.restart_gateway(0).await;
    let mut c = ann.connect(&d, 0).await;
    let after = b.post(&g, "after restart").await.expect("ack");
    assert_eq!(c.message().await.seq, after.seq);
    assert_eq!(a.message().await.seq, after.seq);
}

async fn killed_router_never_acks_and_loses(nats_nodes: usize) {
    let topology = Topology {
        env: vec![("INGRESS_TIMEOUT_MS".into(), "1500".into())],
        ..Topology::on_nats(nats_nodes)
    };
    let mut d = Distributed::start_with(topology).await;
    let s = Scope::new();
    let g = s.guild("g");
    let boss = user(&d, &s.user_id("boss"), Role::Admin, &[&g]).await;
    let mut senders = Vec::new();
    for i in 0..4 {
        let u = user(&d, &s.user_id(&format!("u{i}")), Role::Member, &[&g]).await;
        senders.push(u.connect(&d, i).await);
    }
    let mut tasks = Vec::new();
    for (i, mut client) in senders.into_iter().enumerate() {
        let g = g.clone();
        let prefix = s.user_id(&format!("c{i}"));
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for n in 0..15 {
                let id = format!("{prefix}-{n}");
                let answer = client
                    .request(json!({"guildId": g, "text": id, "messageId": id}))
                    .await;
                outcomes.push((
                    id,
                    answer
                        .map(|a| a.seq)
                        .map_err(|e| e.code.as_str().to_owned()),
                ));
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    d.routers[0].kill();
    let mut acked = Vec::new();
    for task in tasks {
        for (id, outcome) in task.await.expect("sender") {
            match outcome {
                Ok(seq) => acked.push((id, seq)),
                Err(code) => assert_eq!(code, "server_error", "{id}"),
            }
        }
    }
    assert!(
        acked.len() >= 30,
        "the other router took over: {} acked",
        acked.len()
    );
    let mut admin = boss.connect(&d, 0).await;
    let logged: HashMap<String, u64> = resume(&mut admin, &g, 0)
        .await
        .into_iter()
        .map(|(seq, id)| (id, seq))
        .collect();
    for (id, seq) in &acked {
        assert_eq!(
            logged.get(id),
            Some(seq),
            "acked {id} is in the log at its seq"
        );
    }
    d.routers.remove(0);
}

async fn redis_outage_keeps_chats_and_refuses_new_handshakes(nats_nodes: usize) {
    let d = Distributed::start_with(Topology::on_nats(nats_nodes)).await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g]).await;
    let mut a = ann.connect(&d, 0).await;
    let mut b = bob.connect(&d, 1).await;
    // A production Redis comes back with its data (RDB/AOF): snapshot it before the kill, so
    // the gateway's re-read after the reconnect finds the sessions (an empty Redis would rightly
    // revoke every open connection: their sessions are gone).
    snapshot(&d);
    d.redis.stop();
    let ack = a.post(&g, "redis is down").await.expect("chat goes on");
    assert_eq!(b.message().await.seq, ack.seq);
    let refused = bob
        .try_connect(&d, 0, Connect::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (refused.status, refused.error.as_str()),
        (503, "unavailable")
    );
    wait_readyz(&d, 0, 503).await;
    d.redis.start_again();
    wait_readyz(&d, 0, 200).await;
    d.store()
        .put(&bob.info.id, &Session::with_guilds([g.as_str()]))
        .await
        .expect("session again");
    let mut b2 = bob.connect(&d, 0).await;
    let ack = a.post(&g, "redis is back").await.expect("ack");
    assert_eq!(b2.message().await.seq, ack.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_events_apply_live() {
    let d = Distributed::start().await;
    let s = Scope::new();
    let (g1, g2) = (s.guild("g1"), s.guild("g2"));
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g1]).await;
    let bob = user(&d, &s.user_id("bob"), Role::Member, &[&g1, &g2]).await;
    let mut a = ann.connect(&d, 0).await;
    let mut b = bob.connect(&d, 1).await;
    let bus = NatsBus::connect(&d.nats.url(), &NatsConfig::default())
        .await
        .expect("bus");
    d.store()
        .put(
            &ann.info.id,
            &Session::with_guilds([g1.as_str(), g2.as_str()]),
        )
        .await
        .expect("put");
    bus.publish_user_event(&ann.info.id, UserEvent::GuildsChanged)
        .await
        .expect("event");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempt = 0;
    let in_g2 = loop {
        attempt += 1;
        let id = s.user_id(&format!("probe{attempt}"));
        if let Ok(ack) = a
            .request(json!({"guildId": g2, "text": "joined", "messageId": id}))
            .await
        {
            break ack;
        }
        assert!(Instant::now() < deadline, "guild change never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(b.message().await.seq, in_g2.seq);
    assert_eq!(a.message().await.seq, in_g2.seq, "ann now receives g2 live");
    bus.publish_user_event(&ann.info.id, UserEvent::Revoked)
        .await
        .expect("event");
    let frame = a.closed().await.expect("close frame");
    assert_eq!(u16::from(frame.code), 4001);
}
