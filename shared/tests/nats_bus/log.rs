//! Appending: order and `prev` links, idempotency by messageId, ownership, and appends from
//! several processes to one guild.

use chat_shared::bus::nats::payload::{Claim, encode};
use chat_shared::bus::nats::subjects::CLAIMS_BUCKET;
use chat_shared::bus::{AppendOutcome, Bus, INTERNAL_VERSION, Visibility};
use testkit::NatsServer;

use crate::support::*;

#[tokio::test]
async fn seqs_increase_and_prev_links_each_guild_to_its_previous_entry() {
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

#[tokio::test]
async fn a_resend_by_its_owner_returns_the_first_seq_and_stores_nothing() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    let first = append_new(&bus, message("g1", "m1", "u1")).await;
    let mut resend = message("g2", "m1", "u1");
    resend.text = "another text".into();

    let outcome = bus.append(resend).await.unwrap();

    assert_eq!(outcome, AppendOutcome::Duplicate { seq: first.seq });
    let g1 = bus.read_after("g1", 0, 10, Visibility::All).await.unwrap();
    assert_eq!(ids(&g1.entries), ["m1"]);
    assert_eq!(g1.entries[0].message.text, "text of m1");
    let g2 = bus.read_after("g2", 0, 10, Visibility::All).await.unwrap();
    assert!(g2.entries.is_empty());
}

#[tokio::test]
async fn an_id_of_another_sender_is_refused() {
    let nats = NatsServer::start();
    let bus = bus(&nats).await;
    append_new(&bus, message("g1", "m1", "u1")).await;

    let outcome = bus.append(message("g1", "m1", "u2")).await.unwrap();

    assert_eq!(outcome, AppendOutcome::ForeignId);
    let g1 = bus.read_after("g1", 0, 10, Visibility::All).await.unwrap();
    assert_eq!(g1.entries.len(), 1);
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
async fn appends_from_two_processes_to_one_guild_form_one_chain() {
    let nats = NatsServer::start();
    let one = bus(&nats).await;
    let two = bus(&nats).await;
    let appends = (0..20).map(|i| {
        let bus = if i % 2 == 0 { one.clone() } else { two.clone() };
        tokio::spawn(async move { append_new(&bus, message("g1", &format!("m{i}"), "u1")).await })
    });
    let mut appended = Vec::new();
    for task in appends {
        appended.push(task.await.unwrap());
    }

    let log = one.read_after("g1", 0, 100, Visibility::All).await.unwrap();
    assert_eq!(log.entries.len(), 20);
    let mut prev = 0;
    for entry in &log.entries {
        assert_eq!(
            entry.prev, prev,
            "entry {} links to its predecessor",
            entry.seq
        );
        prev = entry.seq;
    }
    appended.sort_by_key(|e| e.seq);
    assert_eq!(appended, log.entries);
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
