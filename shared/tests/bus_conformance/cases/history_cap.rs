//! History pages scan at most `MAX_SCANNED_PER_PAGE` entries (issue #14 item 5): a member's
//! page over a long run of admin-only entries stops there, says `more`, and names the `before`
//! of the next page, which makes progress even when nothing in its stretch is visible.

use chat_shared::bus::history::MAX_SCANNED_PER_PAGE;
use chat_shared::bus::{LogEntry, Visibility};

use crate::support::*;

/// Visible entries appended after the admin-only run.
const VISIBLE: usize = 10;
/// Admin-only entries below the cap's reach on the second page.
const BEYOND: usize = 40;

pub async fn a_member_page_over_admin_only_entries_stops_at_the_scan_cap(d: &impl Deployment) {
    let bus = d.bus().await;
    let admin_run = MAX_SCANNED_PER_PAGE + BEYOND;
    let mut admin: Vec<LogEntry> = Vec::new();
    for i in 0..admin_run {
        admin.push(append_new(&*bus, admin_message("g1", &format!("a{i}"))).await);
    }
    let mut visible: Vec<LogEntry> = Vec::new();
    for i in 0..VISIBLE {
        visible.push(append_new(&*bus, message("g1", &format!("p{i}"), "u1")).await);
    }

    let first = bus
        .read_history("g1", None, 50, Visibility::Public)
        .await
        .unwrap();
    let newest_first: Vec<u64> = visible.iter().rev().map(|e| e.seq).collect();
    assert_eq!(
        seqs(&first.entries),
        newest_first,
        "the visible entries, newest first"
    );
    assert!(
        first.more,
        "the scan stopped at the cap: older entries may exist"
    );
    let stopped_at = admin[admin_run - (MAX_SCANNED_PER_PAGE - VISIBLE)].seq;
    assert_eq!(
        first.next_before,
        Some(stopped_at),
        "every entry from there up was scanned"
    );

    let second = bus
        .read_history("g1", first.next_before, 50, Visibility::Public)
        .await
        .unwrap();
    assert!(second.entries.is_empty(), "nothing visible below");
    assert!(
        !second.more,
        "the rest of the run fits under the cap: the log ends"
    );

    let (entries, more) = bus
        .read_before("g1", None, 50, Visibility::Public)
        .await
        .unwrap();
    assert_eq!(
        (seqs(&entries), more),
        (newest_first, true),
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
