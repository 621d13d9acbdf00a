//! What a history page costs on NATS (issue #14 item 5): a guild of 5,000 admin-only entries
//! then 10 visible ones. A member's page is answered with at most `MAX_SCANNED_PER_PAGE` (+2)
//! direct gets — counted on the wire by a subscriber to the stream's direct-get subjects —
//! with the 10 entries, `more` and the next page's `before`; paging on through the admin-only
//! run costs the same bound per page and ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_shared::bus::history::MAX_SCANNED_PER_PAGE;
use chat_shared::bus::nats::NatsBus;
use chat_shared::bus::{Bus, LogEntry, Visibility};
use chat_shared::protocol::ChatMessage;
use chat_shared::protocol::identity::{Role, UserInfo};
use futures::StreamExt;
use testkit::NatsServer;

use crate::support::*;

const ADMIN_ONLY: usize = 5_000;
const VISIBLE: usize = 10;
/// Direct gets a page needs besides one per scanned entry: finding where `before` is.
const LOOKUP_GETS: usize = 2;

/// Counts the direct-get requests of the log stream seen on the server.
async fn count_direct_gets(server: &NatsServer) -> Arc<AtomicUsize> {
    let client = async_nats::connect(server.url()).await.expect("connect");
    let count = Arc::new(AtomicUsize::new(0));
    for subject in [
        "$JS.API.DIRECT.GET.CHAT_LOG",
        "$JS.API.DIRECT.GET.CHAT_LOG.>",
    ] {
        let mut sub = client.subscribe(subject).await.expect("subscribe");
        let count = count.clone();
        tokio::spawn(async move {
            while sub.next().await.is_some() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    client.flush().await.expect("flush");
    count
}

/// Direct gets made by `read`, once the counter has settled.
async fn gets_during<T>(count: &AtomicUsize, read: impl Future<Output = T>) -> (T, usize) {
    let before = count.load(Ordering::Relaxed);
    let out = read.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (out, count.load(Ordering::Relaxed) - before)
}

fn admin_message(id: &str) -> ChatMessage {
    ChatMessage {
        admin_only: true,
        from: UserInfo::new("root", "root", Role::Admin),
        ..message("g1", id, "root")
    }
}

async fn admin_only_run_then_visible(bus: &NatsBus) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    for i in 0..ADMIN_ONLY {
        entries.push(append_new(bus, admin_message(&format!("a{i}"))).await);
    }
    for i in 0..VISIBLE {
        entries.push(append_new(bus, message("g1", &format!("p{i}"), "u1")).await);
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_page_over_5000_admin_only_entries_is_bounded() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let log = admin_only_run_then_visible(&bus).await;
    let count = count_direct_gets(&server).await;
    let bound = MAX_SCANNED_PER_PAGE + LOOKUP_GETS;

    let started = Instant::now();
    let (first, gets) =
        gets_during(&count, bus.read_history("g1", None, 50, Visibility::Public)).await;
    let first = first.expect("page");
    let took = started.elapsed();
    let visible: Vec<&str> = (0..VISIBLE)
        .rev()
        .map(|i| log[ADMIN_ONLY + i].message.message_id.as_str())
        .collect();
    assert_eq!(
        ids(&first.entries),
        visible,
        "the 10 visible entries, newest first"
    );
    assert!(first.more, "the cap was hit: older entries may exist");
    assert!(
        gets <= bound,
        "{gets} direct gets for one page (bound {bound})"
    );
    println!(
        "member page over {ADMIN_ONLY} admin-only entries: {gets} direct gets, {took:?} (cap {MAX_SCANNED_PER_PAGE})"
    );

    let mut before = first.next_before;
    let mut pages = 1;
    while let Some(next) = before {
        let (page, gets) = gets_during(
            &count,
            bus.read_history("g1", Some(next), 50, Visibility::Public),
        )
        .await;
        let page = page.expect("page");
        assert!(page.entries.is_empty(), "nothing visible below the 10");
        assert!(
            gets <= bound,
            "page {pages}: {gets} direct gets (bound {bound})"
        );
        assert!(
            page.next_before.is_none_or(|b| b < next),
            "each page goes further down"
        );
        before = page.next_before;
        pages += 1;
    }
    let expected_pages = (ADMIN_ONLY + VISIBLE).div_ceil(MAX_SCANNED_PER_PAGE);
    assert_eq!(pages, expected_pages, "paging through the run ends");
}
