//! Appending: order and `prev` links per guild, idempotency by messageId, ownership, and
//! appends from several handles to one guild.

use chat_shared::bus::{AppendOutcome, Visibility};

use crate::support::*;

pub async fn seqs_increase_and_prev_links_each_guild_to_its_previous_entry(d: &impl Deployment) {
    let bus = d.bus().await;
    let a1 = append_new(&*bus, message("g1", "a1", "u1")).await;
    let b1 = append_new(&*bus, message("g2", "b1", "u1")).await;
    let a2 = append_new(&*bus, message("g1", "a2", "u2")).await;
    let a3 = append_new(&*bus, message("g1", "a3", "u1")).await;
    let b2 = append_new(&*bus, message("g2", "b2", "u2")).await;

    assert!(a1.seq >= 1 && a1.seq < a2.seq && a2.seq < a3.seq);
    assert!(b1.seq >= 1 && b1.seq < b2.seq);
    assert_eq!((a1.prev, a2.prev, a3.prev), (0, a1.seq, a2.seq));
    assert_eq!((b1.prev, b2.prev), (0, b1.seq));
    assert_eq!(a2.message.text, "text of a2");
}

pub async fn a_resend_by_its_owner_returns_the_first_seq_and_stores_nothing(d: &impl Deployment) {
    let bus = d.bus().await;
    let first = append_new(&*bus, message("g1", "m1", "u1")).await;
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

pub async fn an_id_of_another_sender_is_refused(d: &impl Deployment) {
    let bus = d.bus().await;
    append_new(&*bus, message("g1", "m1", "u1")).await;

    let outcome = bus.append(message("g1", "m1", "u2")).await.unwrap();

    assert_eq!(outcome, AppendOutcome::ForeignId);
    let g1 = bus.read_after("g1", 0, 10, Visibility::All).await.unwrap();
    assert_eq!(g1.entries.len(), 1);
}

pub async fn appends_from_two_handles_to_one_guild_form_one_chain(d: &impl Deployment) {
    let one = d.bus().await;
    let two = d.bus().await;
    let appends = (0..20).map(|i| {
        let bus = if i % 2 == 0 { one.clone() } else { two.clone() };
        tokio::spawn(async move { append_new(&*bus, message("g1", &format!("m{i}"), "u1")).await })
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
