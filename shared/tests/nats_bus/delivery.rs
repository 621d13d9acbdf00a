//! Live delivery per guild and of admin-only entries; user events; garbage on the wire.

use chat_shared::bus::{Bus, Topic, UserEvent};
use testkit::NatsServer;

use crate::support::*;

#[tokio::test]
async fn each_topic_receives_only_its_entries() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    let mut g1 = bus.subscribe(Topic::Guild("g1".into())).await.unwrap();
    let mut admin = bus.subscribe(Topic::AdminOnly).await.unwrap();

    let public_g2 = append_new(&bus, message("g2", "p-g2", "u1")).await;
    let admin_g2 = append_new(&bus, admin_message("g2", "a-g2")).await;
    let public_g1 = append_new(&bus, message("g1", "p-g1", "u1")).await;
    let admin_g1 = append_new(&bus, admin_message("g1", "a-g1")).await;
    for entry in [&public_g2, &admin_g2, &public_g1, &admin_g1] {
        bus.publish(entry).await.unwrap();
    }

    assert_eq!(next(&mut g1).await, public_g1);
    assert_eq!(next(&mut g1).await, admin_g1);
    assert_eq!(next(&mut admin).await, admin_g2);
    assert_eq!(next(&mut admin).await, admin_g1);
}

#[tokio::test]
async fn a_subscription_is_live_at_the_server_when_subscribe_returns() {
    let nats = NatsServer::start();
    let gateway = bus(&nats).await;
    let router = bus(&nats).await;
    let entry = append_new(&router, message("g1", "m1", "u1")).await;

    let mut g1 = gateway.subscribe(Topic::Guild("g1".into())).await.unwrap();
    router.publish(&entry).await.unwrap();

    assert_eq!(next(&mut g1).await, entry);
}

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

#[tokio::test]
async fn user_events_reach_every_subscriber_with_the_user_id() {
    let nats = NatsServer::start();
    let gateway_a = bus(&nats).await;
    let gateway_b = bus(&nats).await;
    let mut events_a = gateway_a.user_events().await.unwrap();
    let mut events_b = gateway_b.user_events().await.unwrap();

    let odd_id = "user.with spaces*";
    gateway_a
        .publish_user_event("u1", UserEvent::Revoked)
        .await
        .unwrap();
    gateway_a
        .publish_user_event(odd_id, UserEvent::GuildsChanged)
        .await
        .unwrap();

    for events in [&mut events_a, &mut events_b] {
        assert_eq!(next(events).await, ("u1".to_owned(), UserEvent::Revoked));
        assert_eq!(
            next(events).await,
            (odd_id.to_owned(), UserEvent::GuildsChanged)
        );
    }
}
