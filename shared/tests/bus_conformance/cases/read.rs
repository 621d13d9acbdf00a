//! Reading a guild log back: forward with visibility, limit and gap; backward in pages.

use chat_shared::bus::{Bus, LogEntry, Visibility};

use crate::support::*;

/// g1: p1 a2 p3 p4 a5 p6 (a = admin-only), with g2 entries interleaved.
async fn mixed_log(bus: &dyn Bus) -> Vec<LogEntry> {
    let mut g1 = Vec::new();
    for (i, admin) in [false, true, false, false, true, false]
        .into_iter()
        .enumerate()
    {
        let id = format!("{}{}", if admin { "a" } else { "p" }, i + 1);
        let message = if admin {
            admin_message("g1", &id)
        } else {
            message("g1", &id, "u1")
        };
        g1.push(append_new(bus, message).await);
        append_new(bus, message_in_g2(i)).await;
    }
    g1
}

fn message_in_g2(i: usize) -> chat_shared::protocol::ChatMessage {
    message("g2", &format!("other{i}"), "u9")
}

pub async fn read_after_filters_by_visibility_and_cuts_at_the_limit(d: &impl Deployment) {
    let bus = d.bus().await;
    let g1 = mixed_log(&*bus).await;

    let all = bus.read_after("g1", 0, 100, Visibility::All).await.unwrap();
    assert_eq!(ids(&all.entries), ["p1", "a2", "p3", "p4", "a5", "p6"]);
    assert!(!all.gap && !all.more);

    let public = bus
        .read_after("g1", 0, 100, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&public.entries), ["p1", "p3", "p4", "p6"]);

    let page = bus
        .read_after("g1", g1[0].seq, 2, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&page.entries), ["p3", "p4"]);
    assert!(page.more && !page.gap);

    let rest = bus
        .read_after("g1", page.entries[1].seq, 2, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&rest.entries), ["p6"]);
    assert!(!rest.more);

    let none = bus
        .read_after("g1", g1[5].seq, 10, Visibility::All)
        .await
        .unwrap();
    assert!(none.entries.is_empty() && !none.gap && !none.more);
    let unknown = bus
        .read_after("nobody", 0, 10, Visibility::All)
        .await
        .unwrap();
    assert!(unknown.entries.is_empty());
}

pub async fn read_after_one_new_entry_follows_the_same_rules(d: &impl Deployment) {
    let bus = d.bus().await;
    let g1 = mixed_log(&*bus).await;
    let (p4, a5) = (g1[3].seq, g1[4].seq);

    let one = bus
        .read_after("g1", a5, 10, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&one.entries), ["p6"]);
    assert!(!one.gap && !one.more);
    let cut = bus
        .read_after("g1", a5, 0, Visibility::Public)
        .await
        .unwrap();
    assert!(cut.entries.is_empty() && cut.more);

    let p1 = append_new(&*bus, message("g3", "q1", "u1")).await;
    append_new(&*bus, admin_message("g3", "b2")).await;
    let hidden = bus
        .read_after("g3", p1.seq, 10, Visibility::Public)
        .await
        .unwrap();
    assert!(hidden.entries.is_empty() && !hidden.more && !hidden.gap);
    let shown = bus
        .read_after("g3", p1.seq, 10, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&shown.entries), ["b2"]);

    let two = bus
        .read_after("g1", p4, 10, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&two.entries), ["p6"]);
}

pub async fn read_after_reports_a_gap_when_retention_dropped_entries(d: &impl Deployment) {
    let limits = Limits {
        retain_per_guild: Some(3),
        ..Limits::default()
    };
    let bus = d.bus_with(limits).await;
    let g1 = mixed_log(&*bus).await;

    let from_start = bus.read_after("g1", 0, 100, Visibility::All).await.unwrap();
    assert_eq!(ids(&from_start.entries), ["p4", "a5", "p6"]);
    assert!(from_start.gap);

    let from_p3 = bus
        .read_after("g1", g1[2].seq, 100, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&from_p3.entries), ["p4", "a5", "p6"]);
    assert!(!from_p3.gap, "nothing after p3 was dropped");

    let from_a2 = bus
        .read_after("g1", g1[1].seq, 100, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&from_a2.entries), ["p4", "p6"]);
    assert!(from_a2.gap, "p3 was dropped");
}

pub async fn read_before_pages_newest_first_with_visibility(d: &impl Deployment) {
    let bus = d.bus().await;
    let g1 = mixed_log(&*bus).await;

    let (newest, more) = bus
        .read_before("g1", None, 2, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&newest), ["p6", "p4"]);
    assert!(more);

    let (older, more) = bus
        .read_before("g1", Some(newest[1].seq), 2, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(ids(&older), ["p3", "p1"]);
    assert!(!more);

    let (all, more) = bus
        .read_before("g1", None, 10, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&all), ["p6", "a5", "p4", "p3", "a2", "p1"]);
    assert!(!more);

    let (exact, more) = bus
        .read_before("g1", None, 6, Visibility::All)
        .await
        .unwrap();
    assert_eq!(exact.len(), 6);
    assert!(!more);
    assert_eq!(seqs(&all), seqs(&g1).into_iter().rev().collect::<Vec<_>>());
}

pub async fn read_before_a_seq_of_another_guild_starts_below_it(d: &impl Deployment) {
    let bus = d.bus().await;
    let g1 = mixed_log(&*bus).await;
    let g2_between_p3_and_p4 = g1[2].seq + 1;

    let (page, more) = bus
        .read_before("g1", Some(g2_between_p3_and_p4), 10, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&page), ["p3", "a2", "p1"]);
    assert!(!more);

    let (past_the_end, _) = bus
        .read_before("g1", Some(u64::MAX), 1, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&past_the_end), ["p6"]);
    let (nothing, more) = bus
        .read_before("g1", Some(1), 10, Visibility::All)
        .await
        .unwrap();
    assert!(nothing.is_empty() && !more);
}

pub async fn read_before_stops_at_entries_no_longer_retained(d: &impl Deployment) {
    let limits = Limits {
        retain_per_guild: Some(3),
        ..Limits::default()
    };
    let bus = d.bus_with(limits).await;
    mixed_log(&*bus).await;

    let (page, more) = bus
        .read_before("g1", None, 10, Visibility::All)
        .await
        .unwrap();
    assert_eq!(ids(&page), ["p6", "a5", "p4"]);
    assert!(!more);
}
