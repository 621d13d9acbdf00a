//! Reading a guild log forward (the resume path), NATS side: past the newest record it reads
//! with batch direct gets, never a consumer, across more records than one batch holds, only
//! the guild's own, in pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;

use chat_shared::bus::{Bus, Visibility};
use testkit::NatsServer;

use crate::support::*;

/// More records of one guild than one batch direct get returns (256), another guild's in
/// between.
const RECORDS: usize = 300;

#[tokio::test]
async fn a_resume_reads_many_records_with_batch_gets_and_no_consumer() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    let mut g1 = Vec::new();
    for i in 0..RECORDS {
        g1.push(append_new(&bus, message("g1", &format!("a{i}"), "u1")).await);
        if i % 10 == 0 {
            append_new(&bus, message("g2", &format!("b{i}"), "u1")).await;
        }
    }
    let creates = count_consumer_creates(&nats).await;

    let all = bus
        .read_after("g1", g1[0].seq, 1000, Visibility::All)
        .await
        .unwrap();
    let want: Vec<String> = (1..RECORDS).map(|i| format!("a{i}")).collect();
    assert_eq!(ids(&all.entries), want);
    assert!(!all.more && !all.gap);

    let page = bus
        .read_after("g1", g1[10].seq, 20, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&page.entries), want[10..30]);
    assert!(
        page.more,
        "a page stops at its limit and says there is more"
    );

    // A probe after the reads: a create the reads made reached the counter before it.
    let client = raw_client(&nats).await;
    client.publish(PROBE, "{}".into()).await.unwrap();
    client.flush().await.unwrap();
    tokio::time::timeout(PATIENCE, creates.probed.notified())
        .await
        .expect("the probe is seen");
    assert_eq!(
        creates.made.load(Ordering::Relaxed),
        0,
        "the reads asked for no consumer"
    );
}

/// A consumer-create subject no stream has: JetStream creates nothing for it.
const PROBE: &str = "$JS.API.CONSUMER.CREATE.NO_SUCH_STREAM";

/// Consumer-create requests seen on the server other than probes, and a signal per probe.
#[derive(Default)]
struct Creates {
    made: AtomicUsize,
    probed: tokio::sync::Notify,
}

/// Counts the consumer-create requests seen on the server from now on (a first probe, once
/// seen, says the subscription is live).
async fn count_consumer_creates(nats: &NatsServer) -> Arc<Creates> {
    let client = raw_client(nats).await;
    let mut sub = client.subscribe("$JS.API.CONSUMER.CREATE.>").await.unwrap();
    client.publish(PROBE, "{}".into()).await.unwrap();
    tokio::time::timeout(PATIENCE, sub.next()).await.unwrap();
    let creates = Arc::new(Creates::default());
    let seen = creates.clone();
    tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            if message.subject.as_str() == PROBE {
                seen.probed.notify_one();
            } else {
                seen.made.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    creates
}
