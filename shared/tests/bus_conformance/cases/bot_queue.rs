//! The bot work queue as the trait promises it: attempts counted from 1, `retry` delivers
//! again, and `max_attempts` deliveries at most.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::{BotDelivery, BotJob, INTERNAL_VERSION};

use crate::support::*;

fn job(id: &str) -> BotJob {
    BotJob {
        v: INTERNAL_VERSION,
        seq: 1,
        request: Arc::new(message("g1", id, "u1")),
    }
}

fn job_id(delivery: &BotDelivery) -> &str {
    &delivery.job.request.message_id
}

pub async fn a_retried_job_comes_back_as_attempt_two(d: &impl Deployment) {
    let bus = d.bus().await;
    let mut jobs = bus.bot_jobs().await.unwrap();
    bus.enqueue_bot_job(job("m1")).await.unwrap();

    let first = next(&mut jobs).await;
    assert_eq!(
        (job_id(&first), first.attempt, first.max_attempts),
        ("m1", 1, 3)
    );
    first.settle.in_progress().await.unwrap();
    first.settle.retry(Duration::from_millis(50)).await.unwrap();

    let second = next(&mut jobs).await;
    assert_eq!((job_id(&second), second.attempt), ("m1", 2));
    second.settle.ack().await.unwrap();
}

pub async fn a_job_is_not_delivered_more_than_max_attempts_times(d: &impl Deployment) {
    let limits = Limits {
        bot_max_attempts: Some(2),
        ..Limits::default()
    };
    let bus = d.bus_with(limits).await;
    let mut jobs = bus.bot_jobs().await.unwrap();
    bus.enqueue_bot_job(job("doomed")).await.unwrap();

    for attempt in 1..=2 {
        let delivery = next(&mut jobs).await;
        assert_eq!((job_id(&delivery), delivery.attempt), ("doomed", attempt));
        assert_eq!(delivery.max_attempts, 2);
        delivery.settle.retry(Duration::ZERO).await.unwrap();
    }
    bus.enqueue_bot_job(job("marker")).await.unwrap();

    let marker = next(&mut jobs).await;
    assert_eq!((job_id(&marker), marker.attempt), ("marker", 1));
    marker.settle.retry(Duration::ZERO).await.unwrap();

    let after = next(&mut jobs).await;
    assert_eq!(
        (job_id(&after), after.attempt),
        ("marker", 2),
        "a job retried at its last attempt must not come back"
    );
}
