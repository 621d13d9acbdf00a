//! Revocation in production, over real nats-server and redis-server: the session document is
//! rewritten or deleted with plain `redis-cli` commands (no help from this system) and the open
//! socket loses the guild or is closed with 4001 within SESSION_RECHECK_MS — or at once (~1 s)
//! when the Redis server publishes keyspace notifications (`notify-keyspace-events K$gx`).

use std::process::Command;
use std::time::{Duration, Instant};

use chat_shared::protocol::identity::{Role, UserInfo};
use serde_json::json;
use testkit::{NatsServer, RedisServer};

use super::readiness::distributed_node_with;
use crate::support::client::{Client, Connect};
use crate::support::mint;

const RECHECK_MS: u64 = 300;
/// The bound the tests hold the gateway to: the interval, plus margin for a loaded machine.
const BOUND: Duration = Duration::from_millis(RECHECK_MS * 10);

fn redis_cli(redis: &RedisServer, args: &[&str]) {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
}

async fn connect(base: &str, info: &UserInfo) -> Client {
    let token = mint(info, 3600);
    Client::open(
        base,
        Connect {
            token: Some(&token),
            ..Default::default()
        },
    )
    .await
    .expect("admitted")
}

async fn closed_within(client: &mut Client, bound: Duration) -> u16 {
    let started = Instant::now();
    let frame = client.closed().await.expect("a close frame");
    assert!(
        started.elapsed() < bound,
        "closed after {:?}",
        started.elapsed()
    );
    frame.code.into()
}

#[tokio::test]
async fn sessions_rewritten_or_deleted_by_hand_reach_open_sockets() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let node = distributed_node_with(&nats, &redis, |c| c.session_recheck_ms = RECHECK_MS).await;
    let base = format!("http://{}", node.addr);
    let two = json!({"guilds": [{"id": "rv-g1"}, {"id": "rv-g2"}]}).to_string();
    redis_cli(&redis, &["SET", "session:rv-member", &two]);
    redis_cli(&redis, &["SET", "session:rv-admin", &two]);
    let member = UserInfo::new("rv-member", "M", Role::Member);
    let admin = UserInfo::new("rv-admin", "A", Role::Admin);
    let mut member_ws = connect(&base, &member).await;
    let mut admin_ws = connect(&base, &admin).await;
    assert_eq!(node.state.hub.subscribed_guilds(), 2);

    // Rewritten by hand: the member and the admin leave rv-g2 (nobody follows it any more).
    let one = json!({"guilds": [{"id": "rv-g1"}]}).to_string();
    redis_cli(&redis, &["SET", "session:rv-member", &one]);
    redis_cli(&redis, &["SET", "session:rv-admin", &one]);
    let started = Instant::now();
    while node.state.hub.subscribed_guilds() != 1 {
        assert!(
            started.elapsed() < BOUND,
            "rv-g2 still followed after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    member_ws.round_trip().await;

    // Deleted by hand: both closed with 4001, the admin too.
    redis_cli(&redis, &["DEL", "session:rv-member", "session:rv-admin"]);
    assert_eq!(closed_within(&mut member_ws, BOUND).await, 4001);
    assert_eq!(closed_within(&mut admin_ws, BOUND).await, 4001);

    // Marked revoked (the document kept): closed with 4001.
    redis_cli(&redis, &["SET", "session:rv-member", &two]);
    let mut again = connect(&base, &member).await;
    let revoked = json!({"guilds": [{"id": "rv-g1"}], "revoked": true}).to_string();
    redis_cli(&redis, &["SET", "session:rv-member", &revoked]);
    assert_eq!(closed_within(&mut again, BOUND).await, 4001);
    node.shutdown().await;
}

#[tokio::test]
async fn refresh_of_a_revoked_user_closes_4001() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    // A recheck far away: the refresh itself must notice.
    let node = distributed_node_with(&nats, &redis, |c| c.session_recheck_ms = 30_000).await;
    let base = format!("http://{}", node.addr);
    let doc = json!({"guilds": [{"id": "rf-g1"}]}).to_string();
    redis_cli(&redis, &["SET", "session:rf-u1", &doc]);
    let info = UserInfo::new("rf-u1", "R", Role::Member);
    let mut ws = connect(&base, &info).await;
    let revoked = json!({"guilds": [{"id": "rf-g1"}], "revoked": true}).to_string();
    redis_cli(&redis, &["SET", "session:rf-u1", &revoked]);
    ws.send_value(json!({"type": "refresh", "ref": "r1", "token": mint(&info, 7200)}))
        .await;
    assert_eq!(closed_within(&mut ws, Duration::from_secs(5)).await, 4001);
    node.shutdown().await;
}

/// Waits until the hub follows `n` guilds, within `bound`.
async fn follows_within(node: &gateway::Node, n: usize, bound: Duration) {
    let started = Instant::now();
    while node.state.hub.subscribed_guilds() != n {
        assert!(
            started.elapsed() < bound,
            "still {} guilds followed after {bound:?} (want {n})",
            node.state.hub.subscribed_guilds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_keyspace_notifications_a_hand_rewrite_applies_at_once() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    redis_cli(&redis, &["CONFIG", "SET", "notify-keyspace-events", "K$gx"]);
    // The recheck at its slowest (30 s): only the notification can be this quick.
    let node = distributed_node_with(&nats, &redis, |c| c.session_recheck_ms = 30_000).await;
    let base = format!("http://{}", node.addr);
    let two = json!({"guilds": [{"id": "kn-g1"}, {"id": "kn-g2"}]}).to_string();
    redis_cli(&redis, &["SET", "session:kn-member", &two]);
    let member = UserInfo::new("kn-member", "M", Role::Member);
    let mut ws = connect(&base, &member).await;
    follows_within(&node, 2, Duration::from_secs(5)).await;
    // ~1 s is the promise; the margin is for a loaded machine, far below the 30 s recheck.
    let at_once = Duration::from_secs(3);
    let one = json!({"guilds": [{"id": "kn-g1"}]}).to_string();
    redis_cli(&redis, &["SET", "session:kn-member", &one]);
    follows_within(&node, 1, at_once).await;
    ws.round_trip().await;
    redis_cli(&redis, &["DEL", "session:kn-member"]);
    assert_eq!(closed_within(&mut ws, at_once).await, 4001);
    node.shutdown().await;
}
