//! What `connect` creates on the server, and that connecting again with other limits updates
//! them in place.

use std::time::Duration;

use chat_shared::bus::nats::NatsConfig;
use chat_shared::bus::nats::subjects::{BOT_CONSUMER, BOT_STREAM, CLAIMS_BUCKET, LOG_STREAM};
use testkit::NatsServer;

use crate::support::*;

#[tokio::test]
async fn connecting_again_with_other_limits_updates_streams_and_consumer() {
    let nats = NatsServer::start();
    bus(&nats).await;
    let changed = NatsConfig {
        log_retain_per_guild: 7,
        log_max_age_secs: 3600,
        bot_ack_wait_secs: 9,
        bot_max_deliver: 5,
        ..NatsConfig::default()
    };
    bus_with(&nats, changed).await;

    let js = async_nats::jetstream::new(raw_client(&nats).await);
    let log = js
        .get_stream(LOG_STREAM)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    assert_eq!(log.max_messages_per_subject, 7);
    assert_eq!(log.max_age, Duration::from_secs(3600));
    assert!(log.allow_direct);
    let claims = js.get_stream(format!("KV_{CLAIMS_BUCKET}")).await.unwrap();
    assert_eq!(
        claims.cached_info().config.max_age,
        Duration::from_secs(3600)
    );
    let bot = js.get_stream(BOT_STREAM).await.unwrap();
    let consumer = bot.consumer_info(BOT_CONSUMER).await.unwrap();
    assert_eq!(consumer.config.ack_wait, Duration::from_secs(9));
    assert_eq!(consumer.config.max_deliver, 5);
}
