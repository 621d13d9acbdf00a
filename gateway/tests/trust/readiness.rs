//! Readiness after a bus outage, over a real nats-server restart: the first client after the
//! recovery is admitted, not refused on a cached health flag.

use std::time::{Duration, Instant};

use chat_shared::protocol::identity::{Role, UserInfo};
use chat_shared::store::Session;
use gateway::{GatewayConfig, Node};
use testkit::{NatsServer, RedisServer};

use crate::support::client::{Client, Connect};
use crate::support::{http, mint};

/// A gateway of a distributed deployment, in this process, on real NATS and Redis.
pub async fn distributed_node(nats: &NatsServer, redis: &RedisServer) -> Node {
    distributed_node_with(nats, redis, |_| {}).await
}

/// The same with a tweaked configuration.
pub async fn distributed_node_with(
    nats: &NatsServer,
    redis: &RedisServer,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> Node {
    let mut config = GatewayConfig::for_tests();
    config.common.nats_url = Some(nats.url());
    config.common.redis_url = Some(redis.url());
    config.auth.jwt_secret = Some(crate::support::SECRET.to_owned());
    tweak(&mut config);
    // The router owns the streams; the gateway only verifies them.
    chat_shared::bus::nats::NatsBus::connect(&nats.url(), &config.nats)
        .await
        .expect("the streams are set up");
    let deps = gateway::distributed::deps(&config, &config.nats, &nats.url(), &redis.url())
        .await
        .expect("connects to NATS and Redis");
    Node::start(config, deps).await.expect("gateway starts")
}

async fn readyz(base: &str) -> u16 {
    match http().get(format!("{base}/readyz")).send().await {
        Ok(answer) => answer.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn the_first_client_after_a_nats_restart_is_admitted() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let node = distributed_node(&nats, &redis).await;
    let base = format!("http://{}", node.addr);
    let info = UserInfo::new("ready-u1", "Ann", Role::Member);
    node.state
        .store
        .put(&info.id, &Session::with_guilds(["g1"]))
        .await
        .expect("session");
    let token = mint(&info, 3600);
    let how = || Connect {
        token: Some(&token),
        ..Default::default()
    };
    Client::open(&base, how()).await.expect("admitted while up");

    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&base).await != 503 {
        assert!(Instant::now() < deadline, "never reported the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = Client::open(&base, how())
        .await
        .err()
        .expect("refused while down");
    assert_eq!(refused.status, 503);

    nats.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The live bus state: the gateway's own connection answers again.
    while node.state.bus.ping().await.is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = Client::open(&base, how()).await;
    assert!(
        first.is_ok(),
        "the first client after the recovery was refused: {:?}",
        first.err()
    );
    assert_eq!(readyz(&base).await, 200);
    node.shutdown().await;
}
