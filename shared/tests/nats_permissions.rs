//! The per-component NATS permissions of `deploy/nats/nats-server.conf`, against a real
//! nats-server running that file: each component's bus starts as its user and its allowed
//! paths work; the forbidden ones (a gateway writing or deleting the log, a bot reading admin
//! deliveries, anyone without a password) are refused.

use std::time::Duration;

use async_nats::ConnectOptions;
use chat_shared::bus::nats::{NatsAuth, NatsBus, NatsConfig, StreamRole};
use chat_shared::bus::{Bus, Topic};
use futures::StreamExt;
use testkit::NatsServer;

const QUIET: Duration = Duration::from_millis(700);

fn server() -> NatsServer {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nats/nats-server.conf"
    );
    let config = std::fs::read_to_string(path).expect("deploy/nats/nats-server.conf");
    let config = config
        .replace("$NATS_GATEWAY_PASSWORD", "\"gw-pass\"")
        .replace("$NATS_ROUTER_PASSWORD", "\"rt-pass\"")
        .replace("$NATS_BOT_PASSWORD", "\"bot-pass\"");
    NatsServer::start_with_config(&config)
}

fn as_user(user: &str, password: &str) -> NatsConfig {
    NatsConfig {
        auth: NatsAuth {
            nats_user: Some(user.to_owned()),
            nats_password: Some(password.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn raw(server: &NatsServer, user: &str, password: &str) -> async_nats::Client {
    ConnectOptions::with_user_and_password(user.into(), password.into())
        .connect(server.url())
        .await
        .expect("connects")
}

/// Whether a message published by `publisher` on `subject` reaches `sub` (a refused path:
/// one publish, then a quiet period).
async fn reaches(
    sub: &mut async_nats::Subscriber,
    publisher: &async_nats::Client,
    subject: &str,
) -> bool {
    let payload = unique_payload();
    publish(publisher, subject, &payload).await;
    received(sub, &payload, QUIET).await
}

/// An allowed path: the message arrives, however loaded the machine.
///
/// `Client::flush` only empties the client's write buffer; it is not a round trip, so a
/// `SUB` written just before may not be registered at the server yet when another
/// connection's `PUB` is processed, and that one message is lost (the cause of this test's
/// old intermittent failure). So publish again until one arrives, each time with a payload
/// of its own, and match on it: a leftover from an earlier check never counts.
async fn arrives(
    sub: &mut async_nats::Subscriber,
    publisher: &async_nats::Client,
    subject: &str,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let payload = unique_payload();
    while tokio::time::Instant::now() < deadline {
        publish(publisher, subject, &payload).await;
        if received(sub, &payload, Duration::from_millis(200)).await {
            return true;
        }
    }
    false
}

fn unique_payload() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("probe-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn publish(publisher: &async_nats::Client, subject: &str, payload: &str) {
    publisher
        .publish(subject.to_owned(), payload.to_owned().into())
        .await
        .expect("publish");
    publisher.flush().await.expect("flush");
}

/// Whether a message carrying `payload` arrives on `sub` within `wait` (others are skipped).
async fn received(sub: &mut async_nats::Subscriber, payload: &str, wait: Duration) -> bool {
    let matching = async {
        while let Some(message) = sub.next().await {
            if message.payload.as_ref() == payload.as_bytes() {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(wait, matching).await.unwrap_or(false)
}

#[tokio::test]
async fn each_component_may_do_what_it_does_and_nothing_else() {
    let server = server();
    let url = server.url();
    // The router owns the streams; gateway and bot verify them.
    let router = NatsBus::connect_as(&url, &as_user("router", "rt-pass"), StreamRole::Owner)
        .await
        .expect("router bus");
    let gateway = NatsBus::connect_as(&url, &as_user("gateway", "gw-pass"), StreamRole::Verify)
        .await
        .expect("gateway bus");
    let bot = NatsBus::connect_as(&url, &as_user("bot", "bot-pass"), StreamRole::Verify)
        .await
        .expect("bot bus");
    router.ping().await.expect("router ping");
    gateway.ping().await.expect("gateway ping");
    bot.ping().await.expect("bot ping");
    gateway
        .read_after("g1", 0, 10, chat_shared::bus::Visibility::Public)
        .await
        .expect("the gateway reads the log");
    let _deliveries = gateway
        .subscribe(Topic::Guild("g1".into()))
        .await
        .expect("the gateway follows deliveries");
    let _jobs = bot.bot_jobs().await.expect("the bot takes jobs");

    let gw = raw(&server, "gateway", "gw-pass").await;
    let rt = raw(&server, "router", "rt-pass").await;
    let bt = raw(&server, "bot", "bot-pass").await;

    // Ingress: gateways and bots publish, only routers receive.
    let mut at_router = rt.subscribe("chat.ingress.>").await.expect("sub");
    rt.flush().await.expect("flush");
    assert!(arrives(&mut at_router, &gw, "chat.ingress.g1").await);
    assert!(arrives(&mut at_router, &bt, "chat.ingress.g1").await);
    let mut at_gateway = gw.subscribe("chat.ingress.>").await.expect("sub");
    gw.flush().await.expect("flush");
    assert!(
        !reaches(&mut at_gateway, &gw, "chat.ingress.g2").await,
        "a gateway read ingress"
    );

    // Admin deliveries: the gateway gets them, the bot does not; only the router sends them.
    let mut admin_at_gw = gw.subscribe("chat.admin.*").await.expect("sub");
    gw.flush().await.expect("flush");
    assert!(arrives(&mut admin_at_gw, &rt, "chat.admin.g1").await);
    assert!(
        !reaches(&mut admin_at_gw, &gw, "chat.admin.g1").await,
        "a gateway forged an admin delivery"
    );
    let mut admin_at_bot = bt.subscribe("chat.admin.*").await.expect("sub");
    bt.flush().await.expect("flush");
    assert!(
        !reaches(&mut admin_at_bot, &rt, "chat.admin.g1").await,
        "a bot read admin deliveries"
    );

    // The log: the router appends; a gateway or bot cannot append, delete or reconfigure it.
    let rt_js = async_nats::jetstream::new(rt.clone());
    rt_js
        .publish("chat.log.g1", "m".into())
        .await
        .expect("publish")
        .await
        .expect("the router appends");
    for (who, client) in [("gateway", &gw), ("bot", &bt)] {
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(700));
        let append = match js.publish("chat.log.g1", "forged".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!append, "a {who} appended to the log");
        let claim = match js.publish("$KV.CHAT_MSGIDS.m1", "forged".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!claim, "a {who} claimed a messageId");
        assert!(
            js.delete_stream("CHAT_LOG").await.is_err(),
            "a {who} deleted the log"
        );
        let lower = async_nats::jetstream::stream::Config {
            name: "CHAT_LOG".into(),
            subjects: vec!["chat.log.>".into()],
            max_messages_per_subject: 1,
            ..Default::default()
        };
        assert!(
            js.update_stream(lower).await.is_err(),
            "a {who} lowered retention"
        );
    }
    let mut log = rt_js
        .get_stream("CHAT_LOG")
        .await
        .expect("the log is still there");
    assert_eq!(log.info().await.expect("info").state.messages, 1);

    // No password, or a wrong one: refused.
    assert!(async_nats::connect(&url).await.is_err());
    let wrong = ConnectOptions::with_user_and_password("gateway".into(), "nope".into())
        .connect(&url)
        .await;
    assert!(wrong.is_err());
}
