//! What a history page costs on NATS (issue #14 item 5), in direct gets counted on the wire by a
//! subscriber to the stream's direct-get subjects. A member's walk follows each record's
//! `prev_visible` link, so a page over 5,000 admin-only entries costs about one get per entry
//! it returns and says `more` only when a visible older entry exists; an admin's page reads
//! what it returns, as before. Records written without the link (before it existed, published
//! here straight to `chat.log.{guild}`) are walked by `prev`, at most `MAX_SCANNED_PER_PAGE`
//! entries per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE;
use chat_shared::bus::history::MAX_SCANNED_PER_PAGE;
use chat_shared::bus::nats::NatsBus;
use chat_shared::bus::nats::payload::{LogRecord, encode};
use chat_shared::bus::nats::subjects::log_subject;
use chat_shared::bus::{Bus, INTERNAL_VERSION, LogEntry, Visibility};
use chat_shared::protocol::ChatMessage;
use chat_shared::protocol::identity::{Role, UserInfo};
use futures::StreamExt;
use testkit::NatsServer;

use crate::support::*;

const ADMIN_ONLY: usize = 5_000;
const VISIBLE: usize = 10;
/// Direct gets a page needs besides one per record read: finding where `before` is.
const LOOKUP_GETS: usize = 2;
/// Admin-only records written without links, in the scan cap case: more than one page's cap.
const UNLINKED: usize = 600;

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
    let (out, gets, _) = timed_gets_during(count, read).await;
    (out, gets)
}

/// [`gets_during`], and how long `read` took (not counting the wait for the counter).
async fn timed_gets_during<T>(
    count: &AtomicUsize,
    read: impl Future<Output = T>,
) -> (T, usize, Duration) {
    let before = count.load(Ordering::Relaxed);
    let started = Instant::now();
    let out = read.await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    (out, count.load(Ordering::Relaxed) - before, took)
}

fn admin_message(id: &str) -> ChatMessage {
    ChatMessage {
        admin_only: true,
        from: UserInfo::new("root", "root", Role::Admin),
        ..message("g1", id, "root")
    }
}

/// Appends `n` admin-only entries to g1, one record each.
async fn admin_only_run(bus: &NatsBus, n: usize) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    for i in 0..n {
        entries.push(append_new(bus, admin_message(&format!("a{i}"))).await);
    }
    entries
}

/// Appends `n` visible entries to g1 (ids `{prefix}{i}`), one record each.
async fn visible_run(bus: &NatsBus, prefix: &str, n: usize) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    for i in 0..n {
        entries.push(append_new(bus, message("g1", &format!("{prefix}{i}"), "u1")).await);
    }
    entries
}

fn newest_first(entries: &[LogEntry]) -> Vec<u64> {
    entries.iter().rev().map(|e| e.seq).collect()
}

fn seqs(entries: &[LogEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_page_over_5000_admin_only_entries_costs_what_it_returns() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let mut log = admin_only_run(&bus, ADMIN_ONLY).await;
    log.extend(visible_run(&bus, "p", VISIBLE).await);
    let count = count_direct_gets(&server).await;
    let bound = VISIBLE + LOOKUP_GETS;

    let (first, gets, took) =
        timed_gets_during(&count, bus.read_history("g1", None, 50, Visibility::Public)).await;
    let first = first.expect("page");
    assert_eq!(
        seqs(&first.entries),
        newest_first(&log[ADMIN_ONLY..]),
        "the 10 visible entries, newest first"
    );
    assert!(!first.more, "nothing visible is older");
    assert_eq!(first.next_before, None);
    assert!(
        gets <= bound,
        "{gets} direct gets for one page (bound {bound})"
    );
    println!(
        "member page over {ADMIN_ONLY} admin-only entries: {gets} direct gets, {took:?} \
         ({VISIBLE} entries returned)"
    );

    // The admin's page reads every entry it returns, as before the links.
    let (admin, gets) =
        gets_during(&count, bus.read_history("g1", None, 50, Visibility::All)).await;
    let admin = admin.expect("page");
    let newest_50 = newest_first(&log[log.len() - 50..]);
    assert_eq!(seqs(&admin.entries), newest_50, "the newest 50 entries");
    assert!(admin.more);
    assert_eq!(admin.next_before, newest_50.last().copied());
    let admin_bound = 50 + LOOKUP_GETS;
    assert!(
        gets <= admin_bound,
        "{gets} direct gets for the admin's page (bound {admin_bound})"
    );
    println!("admin page of 50: {gets} direct gets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_page_jumps_over_5000_admin_only_entries_between_two_visible() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let older = visible_run(&bus, "old", 1).await;
    admin_only_run(&bus, ADMIN_ONLY).await;
    let newer = visible_run(&bus, "new", 1).await;
    let count = count_direct_gets(&server).await;

    let (page, gets) =
        gets_during(&count, bus.read_history("g1", None, 50, Visibility::Public)).await;
    let page = page.expect("page");
    assert_eq!(seqs(&page.entries), [newer[0].seq, older[0].seq]);
    assert!(!page.more);
    assert!(gets <= 4, "{gets} direct gets (bound 4)");
    println!("member page of visible, {ADMIN_ONLY} admin-only, visible: {gets} direct gets");

    // Paging: a full page goes on below its oldest entry, to the older visible one.
    let (first, more) = (bus.read_before("g1", None, 1, Visibility::Public).await).expect("page");
    assert_eq!((seqs(&first), more), (vec![newer[0].seq], true));
    let (second, gets) = gets_during(
        &count,
        bus.read_before("g1", Some(newer[0].seq), 1, Visibility::Public),
    )
    .await;
    let (second, more) = second.expect("page");
    assert_eq!((seqs(&second), more), (vec![older[0].seq], false));
    assert!(
        gets <= 3,
        "{gets} direct gets for the second page (bound 3)"
    );
}

/// Publishes `n` admin-only records of g1 the way releases before the link wrote them (no
/// `prev_visible`), each on the previous one, as the only writer.
async fn publish_unlinked_admin_records(server: &NatsServer, n: usize) {
    let js = async_nats::jetstream::new(raw_client(server).await);
    let mut last_stream_seq = 0;
    for i in 0..n {
        let record = LogRecord {
            v: INTERNAL_VERSION,
            prev: last_stream_seq * RECORD_SPAN,
            prev_visible: None,
            messages: vec![Arc::new(admin_message(&format!("old{i}")))],
        };
        let payload = encode(&record).expect("encodes");
        if i == 0 {
            let text = String::from_utf8_lossy(&payload);
            assert!(!text.contains("prev_visible"), "the old format, no link");
        }
        let mut headers = HeaderMap::new();
        let expected = last_stream_seq.to_string();
        headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.as_str());
        let ack = js
            .publish_with_headers(log_subject("g1"), headers, payload)
            .await
            .expect("published")
            .await
            .expect("stored");
        last_stream_seq = ack.sequence;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_page_over_records_without_links_stops_at_the_scan_cap() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    publish_unlinked_admin_records(&server, UNLINKED).await;
    let visible = visible_run(&bus, "p", VISIBLE).await;
    let first_link = stored_record(&server, visible[0].seq).await.prev_visible;
    assert_eq!(
        first_link, None,
        "on records without links, none is invented"
    );
    let second_link = stored_record(&server, visible[1].seq).await.prev_visible;
    assert_eq!(second_link, Some(visible[0].seq));
    let count = count_direct_gets(&server).await;
    let bound = MAX_SCANNED_PER_PAGE + LOOKUP_GETS;

    let (first, gets, took) =
        timed_gets_during(&count, bus.read_history("g1", None, 50, Visibility::Public)).await;
    let first = first.expect("page");
    assert_eq!(seqs(&first.entries), newest_first(&visible));
    assert!(first.more, "the cap was hit in the unlinked records");
    assert!(gets <= bound, "{gets} direct gets (bound {bound})");
    println!(
        "member page over {UNLINKED} unlinked admin-only records: {gets} direct gets, {took:?}"
    );

    let next = first.next_before.expect("where to go on");
    let (second, gets) = gets_during(
        &count,
        bus.read_history("g1", Some(next), 50, Visibility::Public),
    )
    .await;
    let second = second.expect("page");
    assert!(second.entries.is_empty(), "nothing visible below");
    assert!(
        !second.more,
        "the rest of the unlinked run fits under the cap"
    );
    let rest = UNLINKED + VISIBLE - MAX_SCANNED_PER_PAGE;
    assert!(
        gets <= rest + LOOKUP_GETS,
        "{gets} direct gets (bound {rest} + 2)"
    );
}
