//! Appending: order and `prev` links per guild, idempotency by messageId, ownership, and
//! appends from several handles to one guild.

use chat_shared::bus::{AppendOutcome, LogEntry, Topic, Visibility};

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

/// A batch (the router's group commit) is appended as if one by one: linked entries in order,
/// a second copy of an id in the same batch answered as the first's duplicate (or refused for
/// another sender), a later resend answered from the batch, and every read and the live feed
/// see each entry once, in order.
pub async fn a_batch_is_appended_as_if_one_by_one(d: &impl Deployment) {
    let bus = d.bus().await;
    let mut live = bus.subscribe(Topic::Guild("g1".into())).await.unwrap();
    let before = append_new(&*bus, message("g1", "m0", "u1")).await;
    let batch = vec![
        message("g1", "m1", "u1"),
        message("g1", "m2", "u2"),
        message("g1", "m1", "u1"),
        message("g1", "m2", "u3"),
        message("g1", "m3", "u1"),
    ];

    let outcomes: Vec<AppendOutcome> = (bus.append_batch(batch).await.into_iter())
        .map(|o| o.expect("append"))
        .collect();

    let stored: Vec<LogEntry> = (outcomes.iter())
        .filter_map(|o| match o {
            AppendOutcome::Appended(entry) => Some(entry.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids(&stored), ["m1", "m2", "m3"]);
    assert_eq!(stored[0].prev, before.seq);
    assert_eq!(
        (stored[1].prev, stored[2].prev),
        (stored[0].seq, stored[1].seq)
    );
    assert!(before.seq < stored[0].seq && stored[0].seq < stored[1].seq);
    assert!(stored[1].seq < stored[2].seq);
    assert_eq!(outcomes[2], AppendOutcome::Duplicate { seq: stored[0].seq });
    assert_eq!(outcomes[3], AppendOutcome::ForeignId);
    let resend = bus.append(message("g1", "m2", "u2")).await.unwrap();
    assert_eq!(resend, AppendOutcome::Duplicate { seq: stored[1].seq });

    bus.publish_batch(&stored).await.unwrap();
    for entry in &stored {
        assert_eq!(next(&mut live).await.seq, entry.seq);
    }
    let all = bus.read_after("g1", 0, 10, Visibility::All).await.unwrap();
    assert_eq!(ids(&all.entries), ["m0", "m1", "m2", "m3"]);
    let tail = bus
        .read_after("g1", stored[0].seq, 10, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&tail.entries), ["m2", "m3"]);
    assert!(!tail.gap);
    let page = (bus
        .read_history("g1", Some(stored[2].seq), 2, Visibility::All)
        .await)
        .unwrap();
    assert_eq!(ids(&page.entries), ["m2", "m1"]);
    assert!(page.more);
    let rest = (bus
        .read_history("g1", page.next_before, 10, Visibility::All)
        .await)
        .unwrap();
    assert_eq!(ids(&rest.entries), ["m0"]);
}
