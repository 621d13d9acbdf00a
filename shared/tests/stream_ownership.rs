//! Stream settings are owned by one component (the router): against a real nats-server, a
//! gateway or bot started with other settings neither lowers retention or replicas nor starts
//! on a configuration that would keep less than it expects.

use chat_shared::bus::nats::{NatsBus, NatsConfig, StreamRole};
use testkit::NatsServer;

fn retaining(per_guild: i64) -> NatsConfig {
    NatsConfig {
        log_retain_per_guild: per_guild,
        ..Default::default()
    }
}

async fn retained(server: &NatsServer) -> i64 {
    let client = async_nats::connect(server.url()).await.expect("connects");
    let js = async_nats::jetstream::new(client);
    let mut log = js.get_stream("CHAT_LOG").await.expect("log stream");
    log.info()
        .await
        .expect("info")
        .config
        .max_messages_per_subject
}

#[tokio::test]
async fn only_the_owner_writes_stream_settings() {
    let server = NatsServer::start();
    let url = server.url();
    let verify = |config: NatsConfig| {
        let url = url.clone();
        async move { NatsBus::connect_as(&url, &config, StreamRole::Verify).await }
    };
    // A verifier started before any stream exists creates them as it wants them (there is
    // nothing to lose yet); the owner aligns them when it starts.
    verify(retaining(10_000))
        .await
        .expect("a verifier started before any stream exists");
    assert_eq!(retained(&server).await, 10_000);
    NatsBus::connect_as(&url, &retaining(10_000), StreamRole::Owner)
        .await
        .expect("the router sets up the streams");
    // A gateway started with defaults that differ: it keeps less than the stream, fine; the
    // stream is not rewritten.
    verify(retaining(100))
        .await
        .expect("keeping more than asked is fine");
    assert_eq!(retained(&server).await, 10_000);
    // One that expects more than the stream keeps refuses to start (data it relies on would go).
    let refused = verify(retaining(50_000)).await.err().expect("refused");
    assert!(refused.to_string().contains("keep less"), "{refused}");
    let more_replicas = NatsConfig {
        nats_replicas: 3,
        ..retaining(10_000)
    };
    assert!(verify(more_replicas).await.is_err());
    assert_eq!(retained(&server).await, 10_000);
}
