//! Live delivery: per guild and of admin-only entries, from the moment `subscribe` returns;
//! user events to every subscriber; `ping`.

use chat_shared::bus::{Topic, UserEvent};

use crate::support::*;

pub async fn each_topic_receives_only_its_entries(d: &impl Deployment) {
    let bus = d.bus().await;
    let mut g1 = bus.subscribe(Topic::Guild("g1".into())).await.unwrap();
    let mut admin = bus.subscribe(Topic::AdminOnly).await.unwrap();

    let public_g2 = append_new(&*bus, message("g2", "p-g2", "u1")).await;
    let admin_g2 = append_new(&*bus, admin_message("g2", "a-g2")).await;
    let public_g1 = append_new(&*bus, message("g1", "p-g1", "u1")).await;
    let admin_g1 = append_new(&*bus, admin_message("g1", "a-g1")).await;
    for entry in [&public_g2, &admin_g2, &public_g1, &admin_g1] {
        bus.publish(entry).await.unwrap();
    }

    assert_eq!(next(&mut g1).await, public_g1);
    assert_eq!(next(&mut g1).await, admin_g1);
    assert_eq!(next(&mut admin).await, admin_g2);
    assert_eq!(next(&mut admin).await, admin_g1);
}

pub async fn a_subscription_is_live_when_subscribe_returns(d: &impl Deployment) {
    let gateway = d.bus().await;
    let router = d.bus().await;
    let entry = append_new(&*router, message("g1", "m1", "u1")).await;

    let mut g1 = gateway.subscribe(Topic::Guild("g1".into())).await.unwrap();
    router.publish(&entry).await.unwrap();

    assert_eq!(next(&mut g1).await, entry);
}

pub async fn user_events_reach_every_subscriber_with_the_user_id(d: &impl Deployment) {
    let gateway_a = d.bus().await;
    let gateway_b = d.bus().await;
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

pub async fn ping_answers(d: &impl Deployment) {
    let bus = d.bus().await;
    bus.ping().await.expect("a running bus answers");
}
