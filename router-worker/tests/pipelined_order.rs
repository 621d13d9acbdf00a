//! Issue #12, pipelined appends over real processes: one sender's sends, fired without waiting
//! for each other, are decided many at a time by the guild's owner yet stored, acked and
//! delivered in the order they were sent: seqs increase in send order, every stored entry
//! links to the previous one, and the live deliveries arrive in seq order with unbroken `prev`
//! links (a gateway sees no gap to fill).

mod support;

use std::time::{Duration, Instant};

use chat_shared::bus::nats::payload::{IngressAnswers, IngressBatch, IngressSend, decode, encode};
use chat_shared::bus::nats::subjects::ingress_subject;
use chat_shared::bus::{Bus, INTERNAL_VERSION, Topic, Visibility};
use futures::StreamExt;
use futures::future::join_all;
use support::*;
use testkit::NatsServer;

/// Sends fired at once (under the router's per-guild queue of 256 plus those in flight).
const SENDS: usize = 250;
const TIMEOUT_MS: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_keep_their_order_in_the_log_and_the_deliveries() {
    let nats = NatsServer::start();
    let _router = router(&nats, &[]).await;
    let bus = gateway_bus(&nats, TIMEOUT_MS).await;
    let guild = "pipelined";
    bus.submit(send(guild, "warm"))
        .await
        .unwrap()
        .expect("warm-up acked");
    let mut live = bus.subscribe(Topic::Guild(guild.into())).await.unwrap();

    // The sends leave one connection in this order without waiting for answers (each its own
    // one-send batch on its own reply subject), so this is the order the router takes them in.
    let client = async_nats::connect(nats.url()).await.expect("raw client");
    let mut replies = Vec::new();
    for i in 0..SENDS {
        let inbox = client.new_inbox();
        replies.push(
            client
                .subscribe(inbox.clone())
                .await
                .expect("reply subscription"),
        );
        let batch = IngressBatch {
            v: INTERNAL_VERSION,
            sends: vec![IngressSend {
                request: send(guild, &format!("p-{i}")),
                timeout_ms: TIMEOUT_MS,
                trace: Default::default(),
            }],
        };
        let payload = encode(&batch).expect("encode");
        client
            .publish_with_reply(ingress_subject(Some(guild)), inbox, payload)
            .await
            .expect("send");
    }
    client.flush().await.expect("flush");
    let started = Instant::now();
    let outcomes = join_all(replies.iter_mut().map(|r| r.next())).await;
    eprintln!(
        "{SENDS} pipelined sends answered in {:?}",
        started.elapsed()
    );
    let mut seqs = Vec::new();
    for (i, reply) in outcomes.into_iter().enumerate() {
        let reply = reply.expect("an answer");
        let answers = decode::<IngressAnswers>(&reply.payload).map(|a| a.outcomes);
        match answers.as_deref() {
            Ok([Ok(ack)]) => seqs.push(ack.seq),
            other => panic!("p-{i}: {other:?}"),
        }
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "acked seqs follow the send order: {seqs:?}"
    );

    let log = bus
        .read_after(guild, 0, SENDS + 10, Visibility::All)
        .await
        .expect("read the log");
    let stored: Vec<_> = log.entries.iter().skip(1).collect();
    assert_eq!(stored.len(), SENDS);
    for (i, entry) in stored.iter().enumerate() {
        assert_eq!(entry.message.message_id, format!("p-{i}"));
        assert_eq!(entry.seq, seqs[i]);
    }
    for pair in log.entries.windows(2) {
        assert_eq!(pair[1].prev, pair[0].seq, "stored prev links");
    }

    let mut last = log.entries[0].seq;
    for i in 0..SENDS {
        let entry = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .unwrap_or_else(|_| panic!("delivery {i} never came"))
            .expect("delivery stream open");
        assert_eq!(
            (entry.prev, entry.message.message_id.as_str()),
            (last, format!("p-{i}").as_str()),
            "delivery {i} in order, linked to the one before"
        );
        last = entry.seq;
    }
}
