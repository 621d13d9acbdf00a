//! Appending, NATS side: seqs follow the stream's order (increasing across guilds), one read
//! answers the claims of a whole batch, a claim left without its seq is settled by the
//! duplicate window, a batch stored without its claims is still deduplicated by the next
//! writer, and names NATS cannot carry are refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;

use chat_shared::bus::nats::payload::{Claim, encode};
use chat_shared::bus::nats::subjects::CLAIMS_BUCKET;
use chat_shared::bus::{AppendOutcome, Bus, INTERNAL_VERSION, Visibility};
use testkit::NatsServer;

use crate::support::*;

#[tokio::test]
async fn seqs_increase_across_guilds_in_stream_order_with_prev_links() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    let a1 = append_new(&bus, message("g1", "a1", "u1")).await;
    let b1 = append_new(&bus, message("g2", "b1", "u1")).await;
    let a2 = append_new(&bus, message("g1", "a2", "u2")).await;
    let a3 = append_new(&bus, message("g1", "a3", "u1")).await;
    let b2 = append_new(&bus, message("g2", "b2", "u2")).await;

    assert!(a1.seq >= 1 && a1.seq < b1.seq && b1.seq < a2.seq && a2.seq < a3.seq);
    assert_eq!((a1.prev, a2.prev, a3.prev), (0, a1.seq, a2.seq));
    assert_eq!((b1.prev, b2.prev), (0, b1.seq));
    assert_eq!(a2.message.text, "text of a2");
}

/// A writer that never saw the ids (another process, another guild) reads the claims of a
/// whole batch with one batch direct get: the resend is answered with the first seq, another
/// sender's copy is refused, the fresh ones are stored, and their claims are written.
#[tokio::test]
async fn one_read_answers_the_claims_of_a_whole_batch() {
    let nats = NatsServer::start();
    let first = bus(&nats).await;
    let m1 = append_new(&first, message("g1", "m1", "u1")).await;
    append_new(&first, message("g1", "m2", "u2")).await;
    wait_for_claim(&nats, "m1").await;
    wait_for_claim(&nats, "m2").await;
    let reads = count_claim_reads(&nats).await;

    let other = bus(&nats).await;
    let outcomes = other
        .append_batch(vec![
            message("g2", "m1", "u1"),
            message("g2", "f1", "u1"),
            message("g2", "m2", "u9"),
            message("g2", "f2", "u2"),
        ])
        .await;

    let outcomes: Vec<AppendOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes[0], AppendOutcome::Duplicate { seq: m1.seq });
    assert!(matches!(&outcomes[1], AppendOutcome::Appended(e) if e.message.message_id == "f1"));
    assert_eq!(outcomes[2], AppendOutcome::ForeignId);
    assert!(matches!(&outcomes[3], AppendOutcome::Appended(e) if e.message.message_id == "f2"));
    let g2 = other
        .read_after("g2", 0, 10, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&g2.entries), ["f1", "f2"]);
    wait_for_claim(&nats, "f1").await;
    wait_for_claim(&nats, "f2").await;
    assert_eq!(settled(&reads).await, 1, "one claim read for the batch");
}

/// A claim that does not decode (garbage put on the bucket) fails its own message only: the
/// others of the same batch are stored.
#[tokio::test]
async fn a_claim_that_does_not_decode_fails_only_its_message() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    let js = async_nats::jetstream::new(raw_client(&nats).await);
    let claims = js.get_key_value(CLAIMS_BUCKET).await.unwrap();
    claims.put("bad", "not a claim".into()).await.unwrap();

    let outcomes = bus
        .append_batch(vec![message("g1", "bad", "u1"), message("g1", "ok", "u1")])
        .await;

    assert!(outcomes[0].is_err(), "{:?}", outcomes[0]);
    assert!(matches!(&outcomes[1], Ok(AppendOutcome::Appended(e)) if e.message.message_id == "ok"));
}

/// Counts the batch direct gets of the claims bucket seen on the server, from now on.
async fn count_claim_reads(nats: &NatsServer) -> Arc<AtomicUsize> {
    let client = raw_client(nats).await;
    let subject = "$JS.API.DIRECT.GET.KV_CHAT_MSGIDS";
    let mut sub = client.subscribe(subject).await.unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    // A probe on the same subject: once it is counted, the subscription is live.
    client.publish(subject, "{}".into()).await.unwrap();
    tokio::time::timeout(PATIENCE, sub.next()).await.unwrap();
    let counted = count.clone();
    tokio::spawn(async move {
        while sub.next().await.is_some() {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    count
}

/// The count once it has reached one and then stopped moving for 200 ms.
async fn settled(count: &AtomicUsize) -> usize {
    let first = async {
        while count.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, first)
        .await
        .expect("a claim read is seen");
    let mut last = count.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = count.load(Ordering::Relaxed);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// A process that stopped between publishing and recording the seq in its claim leaves a
/// claim with seq 0; the resend is caught by `Nats-Msg-Id` and answered with the first seq,
/// even from another process whose idea of the guild's head is stale.
#[tokio::test]
async fn a_claim_left_without_seq_is_settled_by_the_duplicate_window() {
    let nats = NatsServer::start();
    let stale = bus(&nats).await;
    let fresh = bus(&nats).await;
    append_new(&stale, message("g1", "warmup", "u1")).await;
    let first = append_new(&fresh, message("g1", "m1", "u1")).await;
    append_new(&fresh, message("g1", "m2", "u1")).await;
    reset_claim(&nats, "m1", "u1", "g1").await;

    let outcome = stale.append(message("g1", "m1", "u1")).await.unwrap();

    assert_eq!(outcome, AppendOutcome::Duplicate { seq: first.seq });
    let log = stale
        .read_after("g1", 0, 10, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&log.entries), ["warmup", "m1", "m2"]);
    let again = stale.append(message("g1", "m1", "u1")).await.unwrap();
    assert_eq!(again, AppendOutcome::Duplicate { seq: first.seq });
}

/// A writer that died after its batch was stored but before it wrote the claims leaves only
/// the record (a batch has no `Nats-Msg-Id`): the next writer of the guild reads the guild's
/// newest records when it starts on it, so a resend is still answered with the first seq and
/// another sender's copy is still refused.
#[tokio::test]
async fn a_batch_stored_without_its_claims_is_deduplicated_by_the_next_writer() {
    let nats = NatsServer::start();
    let dying = bus(&nats).await;
    let outcomes = dying
        .append_batch(vec![message("g1", "m1", "u1"), message("g1", "m2", "u2")])
        .await;
    let seqs: Vec<u64> = (outcomes.into_iter())
        .map(|o| match o {
            Ok(AppendOutcome::Appended(entry)) => entry.seq,
            other => panic!("not appended: {other:?}"),
        })
        .collect();
    forget_claim(&nats, "m1").await;
    forget_claim(&nats, "m2").await;

    let next = bus(&nats).await;
    let resend = next.append(message("g1", "m1", "u1")).await.unwrap();
    let foreign = next.append(message("g1", "m2", "u9")).await.unwrap();

    assert_eq!(resend, AppendOutcome::Duplicate { seq: seqs[0] });
    assert_eq!(foreign, AppendOutcome::ForeignId);
    let log = next.read_after("g1", 0, 10, Visibility::All).await.unwrap();
    assert_eq!(ids(&log.entries), ["m1", "m2"]);
}

/// Waits until the background write of a claim has landed.
async fn wait_for_claim(nats: &NatsServer, id: &str) {
    let js = async_nats::jetstream::new(raw_client(nats).await);
    let claims = js.get_key_value(CLAIMS_BUCKET).await.unwrap();
    let written = async {
        while claims.get(id).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), written)
        .await
        .expect("the claim is written in the background");
}

/// Deletes a claim once its background write has landed (as if it was never written).
async fn forget_claim(nats: &NatsServer, id: &str) {
    wait_for_claim(nats, id).await;
    let js = async_nats::jetstream::new(raw_client(nats).await);
    let claims = js.get_key_value(CLAIMS_BUCKET).await.unwrap();
    claims.delete(id).await.unwrap();
    assert_eq!(claims.get(id).await.unwrap(), None, "claim of {id} gone");
}

async fn reset_claim(nats: &NatsServer, id: &str, owner: &str, guild: &str) {
    let js = async_nats::jetstream::new(raw_client(nats).await);
    let claims = js.get_key_value(CLAIMS_BUCKET).await.unwrap();
    let claim = Claim {
        v: INTERNAL_VERSION,
        owner: owner.into(),
        guild: guild.into(),
        seq: 0,
    };
    claims.put(id, encode(&claim).unwrap()).await.unwrap();
}

#[tokio::test]
async fn ids_and_guilds_that_cannot_be_nats_names_are_refused() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    for bad in [message("g.1", "m1", "u1"), message("g1", "m 1", "u1")] {
        let error = bus.append(bad).await.unwrap_err();
        assert!(
            matches!(error, chat_shared::bus::BusError::BadPayload(_)),
            "{error:?}"
        );
    }
}
