//! A NATS server restart under a running bus: calls fail fast while it is down, and
//! subscriptions, appends and the bot queue work again once it is back, with no help.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::nats::NatsBus;
use chat_shared::bus::{
    AppendOutcome, BotJob, Bus, BusError, INTERNAL_VERSION, Topic, UserEvent, Visibility,
};
use testkit::NatsServer;

use crate::support::*;

/// Waits for the bus to answer again (an event: the reconnect), polling its readiness.
async fn wait_until_ready(bus: &NatsBus) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while bus.ping().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bus never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn subscriptions_and_appends_survive_a_server_restart() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    let mut g1 = bus.subscribe(Topic::Guild("g1".into())).await.unwrap();
    let mut events = bus.user_events().await.unwrap();
    let mut jobs = bus.bot_jobs().await.unwrap();
    let before = append_new(&bus, message("g1", "before", "u1")).await;

    nats.stop();
    let down = bus
        .append(message("g1", "while-down", "u1"))
        .await
        .unwrap_err();
    assert!(matches!(down, BusError::Unavailable(_)), "{down:?}");
    assert!(bus.ping().await.is_err());
    nats.start_again();
    wait_until_ready(&bus).await;

    let after = append_new(&bus, message("g1", "after", "u1")).await;
    assert_eq!(after.prev, before.seq);
    bus.publish(&after).await.unwrap();
    assert_eq!(next(&mut g1).await, after);
    bus.publish_user_event("u1", UserEvent::Revoked)
        .await
        .unwrap();
    assert_eq!(next(&mut events).await.1, UserEvent::Revoked);
    let job = BotJob {
        v: INTERNAL_VERSION,
        seq: after.seq,
        request: Arc::new(message("g1", "after", "u1")),
    };
    bus.enqueue_bot_job(job).await.unwrap();
    let delivery = next(&mut jobs).await;
    assert_eq!(delivery.job.seq, after.seq);
    delivery.settle.ack().await.unwrap();

    let resend = bus.append(message("g1", "before", "u1")).await.unwrap();
    assert_eq!(resend, AppendOutcome::Duplicate { seq: before.seq });
    let log = bus.read_after("g1", 0, 10, Visibility::All).await.unwrap();
    assert_eq!(ids(&log.entries), ["before", "after"]);
}
