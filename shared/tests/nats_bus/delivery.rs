//! Live delivery, NATS side: garbage on a delivery subject is dropped and counted.

use chat_shared::bus::{Bus, Topic};
use testkit::NatsServer;

use crate::support::*;

#[tokio::test]
async fn garbage_on_the_delivery_subject_is_dropped_and_the_stream_goes_on() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    let raw = raw_client(&nats).await;
    let mut g1 = bus.subscribe(Topic::Guild("g".into())).await.unwrap();

    let mut echo = raw.subscribe("chat.deliver.g").await.unwrap();
    raw.publish("chat.deliver.g", "not msgpack".into())
        .await
        .unwrap();
    next(&mut echo).await;
    let entry = append_new(&bus, message("g", "m1", "u1")).await;
    bus.publish(&entry).await.unwrap();

    assert_eq!(next(&mut g1).await, entry);
    assert_eq!(bus.dropped_payloads().delivery, 1);
}
