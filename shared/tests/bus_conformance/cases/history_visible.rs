//! A member's history page costs what it returns (issue #14 item 5): over a run of admin-only
//! entries longer than `MAX_SCANNED_PER_PAGE`, one page finds the visible entries on both
//! sides of it, says `more` exactly when a visible older entry remains, and pages on below its
//! oldest entry. An admin's page over the same log sees everything, as before.

use chat_shared::bus::history::MAX_SCANNED_PER_PAGE;
use chat_shared::bus::{LogEntry, Visibility};

use crate::support::*;

/// Visible entries appended before the admin-only run.
const OLDER: usize = 5;
/// Visible entries appended after it.
const NEWER: usize = 10;
/// Admin-only entries beyond the scan cap.
const BEYOND: usize = 40;

pub async fn a_member_page_over_admin_only_entries_finds_the_visible_entries_below_them(
    d: &impl Deployment,
) {
    let bus = d.bus().await;
    let mut visible: Vec<LogEntry> = Vec::new();
    for i in 0..OLDER {
        visible.push(append_new(&*bus, message("g1", &format!("old{i}"), "u1")).await);
    }
    for i in 0..MAX_SCANNED_PER_PAGE + BEYOND {
        append_new(&*bus, admin_message("g1", &format!("a{i}"))).await;
    }
    for i in 0..NEWER {
        visible.push(append_new(&*bus, message("g1", &format!("new{i}"), "u1")).await);
    }
    let newest_first: Vec<u64> = visible.iter().rev().map(|e| e.seq).collect();

    let all = bus
        .read_history("g1", None, 50, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(
        seqs(&all.entries),
        newest_first,
        "the visible entries on both sides of the run, newest first"
    );
    assert!(!all.more, "nothing visible is older");
    assert_eq!(all.next_before, None);

    let limit = NEWER + 2;
    let first = bus
        .read_history("g1", None, limit, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(seqs(&first.entries), newest_first[..limit]);
    assert!(first.more, "visible entries remain below the page");
    assert_eq!(first.next_before, Some(newest_first[limit - 1]));
    let second = bus
        .read_history("g1", first.next_before, limit, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(seqs(&second.entries), newest_first[limit..]);
    assert!(!second.more);

    let (entries, more) = bus
        .read_before("g1", None, limit, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(
        (seqs(&entries), more),
        (newest_first[..limit].to_vec(), true),
        "read_before agrees"
    );

    let admin_page = bus
        .read_history("g1", None, 50, Visibility::All)
        .await
        .unwrap();
    assert_eq!(admin_page.entries.len(), 50);
    assert!(admin_page.more);
    assert_eq!(
        admin_page.next_before,
        admin_page.entries.last().map(|e| e.seq),
        "a full page goes on below its oldest entry"
    );
}
