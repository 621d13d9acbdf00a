//! The bot work queue, NATS side: one delivery for a job queued twice, sharing between workers,
//! and the redelivery of a job whose worker vanished.

use std::collections::HashSet;
use std::sync::Arc;

use chat_shared::bus::nats::NatsConfig;
use chat_shared::bus::{BotDelivery, BotJob, Bus, INTERNAL_VERSION};
use futures::StreamExt;
use testkit::NatsServer;

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

#[tokio::test]
async fn the_same_job_queued_twice_is_delivered_once() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    bus.enqueue_bot_job(job("m1")).await.unwrap();
    bus.enqueue_bot_job(job("m1")).await.unwrap();
    bus.enqueue_bot_job(job("marker")).await.unwrap();
    let mut jobs = bus.bot_jobs().await.unwrap();

    let first = next(&mut jobs).await;
    assert_eq!(job_id(&first), "m1");
    first.settle.ack().await.unwrap();
    let second = next(&mut jobs).await;
    assert_eq!(job_id(&second), "marker");
}

#[tokio::test]
async fn two_workers_share_the_queue_and_each_job_runs_once() {
    let nats = NatsServer::start();
    let producer = bus(&nats).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for worker in ["w1", "w2"] {
        let mut jobs = bus(&nats).await.bot_jobs().await.unwrap();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(delivery) = jobs.next().await {
                let _ = tx.send((worker, job_id(&delivery).to_owned()));
                delivery.settle.ack().await.unwrap();
            }
        });
    }
    for i in 0..10 {
        producer
            .enqueue_bot_job(job(&format!("m{i}")))
            .await
            .unwrap();
    }

    let mut done = Vec::new();
    let mut distinct = HashSet::new();
    while distinct.len() < 10 {
        let (worker, id) = received(&mut rx).await;
        distinct.insert(id.clone());
        done.push((worker, id));
    }
    assert_eq!(done.len(), 10, "no job ran twice: {done:?}");
}

#[tokio::test]
async fn a_job_of_a_vanished_worker_goes_to_another_after_the_ack_wait() {
    let nats = NatsServer::start();
    let config = NatsConfig {
        bot_ack_wait_secs: 1,
        ..NatsConfig::default()
    };
    let bus = bus_with(&nats, config.clone()).await;
    let mut doomed_worker = bus.bot_jobs().await.unwrap();
    bus.enqueue_bot_job(job("m1")).await.unwrap();
    let taken = next(&mut doomed_worker).await;
    assert_eq!(taken.attempt, 1);
    drop(taken);
    drop(doomed_worker);

    let mut other_worker = bus_with(&nats, config).await.bot_jobs().await.unwrap();
    let again = next(&mut other_worker).await;

    assert_eq!((job_id(&again), again.attempt), ("m1", 2));
    again.settle.ack().await.unwrap();
}
