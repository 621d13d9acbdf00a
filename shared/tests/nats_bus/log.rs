//! Appending, NATS side: seqs follow the stream's order (increasing across guilds), a claim
//! left without its seq is settled by the duplicate window, a batch stored without its claims
//! is still deduplicated by the next writer, and names NATS cannot carry are refused.

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

/// Deletes a claim once its background write has landed (as if it was never written).
async fn forget_claim(nats: &NatsServer, id: &str) {
    let js = async_nats::jetstream::new(raw_client(nats).await);
    let claims = js.get_key_value(CLAIMS_BUCKET).await.unwrap();
    let written = async {
        while claims.get(id).await.unwrap().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), written)
        .await
        .expect("the claim is written in the background");
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
