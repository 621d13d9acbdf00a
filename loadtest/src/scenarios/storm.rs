//! `storm`: N receiving clients in their guilds while dedicated senders keep a message stream
//! going. After the warm-up every receiver drops its socket at once (no close frame), then
//! reconnects naming its last seq per guild in the handshake (`/ws?resume=g:seq,…`, so the
//! gateway replays before any live message of those guilds, with no first-frame wait) and
//! waits for one `resumed` per guild. Reported: time until every client resumed, per-client resume time, deliveries owed
//! but never received (lost), duplicates and reordering. Senders are not dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::fanout::{
    SEND_LEAD, delivery_stats, duration_ns, merge_book_failures, rate_line, read_client,
    receiver_specs,
};
use super::{CostSamples, Setup, connect_all, finish_tasks, server_cost, summary, wait_until};
use crate::clock::{instant_at, now_ns};
use crate::config::{LoadShape, RunConfig, UserSource};
use crate::connect::{Connected, Connector, WsStream};
use crate::delivery::{ClientLedger, DeliveryBook, ReadEnd, Window, receive};
use crate::error::LoadTestError;
use crate::membership::{Membership, new_nonce};
use crate::progress::Live;
use crate::report::{PresenceFrames, Report, StormStats};
use crate::sender::{MessageCounter, SenderPlan, run_sender};
use crate::stats::{Tally, latency::summarize};
use crate::users::{UserSpec, VirtualUser, provision};

/// Longest pause between reconnect attempts of one client.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What every storm client task shares.
struct Shared {
    connector: Arc<Connector>,
    users: Arc<Vec<VirtualUser>>,
    book: Arc<DeliveryBook>,
    storm: CancellationToken,
    stop: CancellationToken,
    reconnect_failures: Tally,
}

pub async fn run(
    config: &RunConfig,
    shape: &LoadShape,
    setup: Setup,
    source: &UserSource,
) -> Result<Report, LoadTestError> {
    let live = Live::new(config.progress);
    let nonce = new_nonce();
    let membership = Arc::new(Membership::new(
        &nonce,
        shape.clients,
        shape.guilds,
        shape.guilds_per_client,
    ));
    let anchor = |j: usize| membership.sender_anchor(j, shape.senders);
    let mut specs = receiver_specs(&membership);
    specs.extend((0..shape.senders).map(|j| UserSpec {
        id: format!("lt{nonce}s{j}"),
        guilds: membership.guild_ids_of(anchor(j)),
    }));
    live.phase("users", specs.len() as u64);
    let mut all_users = provision(source, &setup.http_base(), specs).await?;
    let sender_users = Arc::new(all_users.split_off(shape.clients));
    let users = Arc::new(all_users);
    let failures = Arc::new(Tally::default());
    let mut samples = CostSamples {
        before_connect: setup.watcher.sample(),
        ..CostSamples::default()
    };
    live.phase("connecting", users.len() as u64);
    let receivers = connect_all(
        &setup.connector,
        &users,
        config.ramp_per_sec,
        &failures,
        &live,
    )
    .await;
    let senders = connect_all(
        &setup.connector,
        &sender_users,
        config.ramp_per_sec,
        &failures,
        &live,
    )
    .await;
    samples.after_connect = setup.watcher.sample();

    let send_start = now_ns() + duration_ns(SEND_LEAD);
    let storm_at = send_start + duration_ns(config.warmup);
    let send_end = storm_at + duration_ns(config.duration);
    let window = Window {
        start_ns: send_start,
        end_ns: send_end,
    };
    let book = Arc::new(DeliveryBook::new(membership.clone(), window));
    let shared = Arc::new(Shared {
        connector: setup.connector.clone(),
        users: users.clone(),
        book: book.clone(),
        storm: CancellationToken::new(),
        stop: CancellationToken::new(),
        reconnect_failures: Tally::default(),
    });
    let mut tasks = JoinSet::new();
    let plans = SenderPlan::spread(
        shape.senders,
        shape.rate,
        send_start,
        send_end,
        shape.message_bytes,
        |j| membership.guilds_of(anchor(j)).to_vec(),
    );
    spawn_senders(&mut tasks, senders.connected, plans, &shared);
    let dropped = receivers.stats.connected;
    for (index, slot) in receivers.connected.into_iter().enumerate() {
        if let Some(connection) = slot {
            tasks.spawn(storm_client(index, connection, shared.clone()));
        }
    }

    live.phase("warm-up", config.warmup.as_secs());
    let ticker = live.spawn_ticker(rate_line(book.clone()));
    tokio::time::sleep_until(instant_at(storm_at).into()).await;
    samples.window_start = setup.watcher.sample();
    live.phase("storm", config.duration.as_secs());
    let storm_started = Instant::now();
    let storm_ns = now_ns();
    let presence_before = presence_counts(&book);
    shared.storm.cancel();
    let drain_deadline = instant_at(send_end) + shape.drain;
    let all_resumed = wait_until(drain_deadline, || {
        book.resumed_clients.load(Relaxed) >= dropped
    })
    .await
    .then(|| {
        let last = book.last_resume_done_ns.load(Relaxed);
        Duration::from_nanos(last.saturating_sub(storm_ns))
    });
    samples.window_end = setup.watcher.sample();
    samples.window = storm_started.elapsed();
    tokio::time::sleep_until(instant_at(send_end).into()).await;
    live.phase("draining", shape.drain.as_secs());
    wait_until(drain_deadline, || book.complete()).await;
    shared.stop.cancel();
    drop(ticker);
    finish_tasks(&mut tasks).await;
    live.finish();

    let delivery = delivery_stats(&book, config.warmup + config.duration);
    let mut storm = storm_stats(&book, &shared.reconnect_failures, dropped, all_resumed);
    storm.presence_per_client = presence_per_client(&book, presence_before, dropped);
    let mut all_failures = failures.snapshot();
    merge_book_failures(&mut all_failures, &book);
    for (reason, count) in shared.reconnect_failures.snapshot() {
        *all_failures
            .entry(format!("reconnect: {reason}"))
            .or_insert(0) += count;
    }
    Ok(Report {
        run: summary(config, shape, &setup.targets),
        server: server_cost(&setup.watcher, &samples, receivers.stats.connected, None),
        connections: receivers.stats,
        delivery: Some(delivery),
        storm: Some(storm),
        failures: all_failures,
        timeline: book.latency.timeline(),
        cdf: book.latency.cdf(),
    })
}

fn storm_stats(
    book: &DeliveryBook,
    reconnect_failures: &Tally,
    dropped: u64,
    all_resumed: Option<Duration>,
) -> StormStats {
    let mut resume =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid");
    for ns in book.resume_times.lock().iter() {
        resume.saturating_record((ns / 1000).max(1));
    }
    StormStats {
        clients_dropped: dropped,
        clients_resumed: book.resumed_clients.load(Relaxed),
        all_resumed_ms: all_resumed.map(|d| d.as_secs_f64() * 1000.0),
        resume: summarize(&resume),
        reconnect_failures: reconnect_failures.total(),
        lost: book
            .expected
            .load(Relaxed)
            .saturating_sub(book.received.load(Relaxed)),
        duplicates: book.duplicates.load(Relaxed),
        handshakes_per_s: all_resumed
            .filter(|d| !d.is_zero())
            .map(|d| book.resumed_clients.load(Relaxed) as f64 / d.as_secs_f64()),
        presence_per_client: PresenceFrames::default(),
    }
}

/// (snapshots, diffs) the receivers have received so far.
fn presence_counts(book: &DeliveryBook) -> (u64, u64) {
    (
        book.presence_snapshots.load(Relaxed),
        book.presence_diffs.load(Relaxed),
    )
}

/// Presence frames per dropped client since `before` (the storm signal).
fn presence_per_client(book: &DeliveryBook, before: (u64, u64), dropped: u64) -> PresenceFrames {
    let (snapshots, diffs) = presence_counts(book);
    let per = |n: u64| n as f64 / dropped.max(1) as f64;
    PresenceFrames {
        snapshots: per(snapshots.saturating_sub(before.0)),
        diffs: per(diffs.saturating_sub(before.1)),
    }
}

fn spawn_senders(
    tasks: &mut JoinSet<()>,
    connected: Vec<Option<Connected>>,
    plans: Vec<SenderPlan>,
    shared: &Arc<Shared>,
) {
    let counter = Arc::new(MessageCounter::default());
    let encoding = shared.connector.encoding();
    for (slot, plan) in connected.into_iter().zip(plans) {
        let Some(connection) = slot else { continue };
        let (sink, stream) = connection.stream.split();
        let book = shared.book.clone();
        let ledger = ClientLedger::new(usize::MAX, &[], false);
        tasks.spawn(run_sender(
            sink,
            plan,
            book.clone(),
            counter.clone(),
            encoding,
            shared.stop.clone(),
        ));
        tasks.spawn(read_client(
            stream,
            ledger,
            book,
            encoding,
            shared.stop.clone(),
        ));
    }
}

/// One receiver: read until the storm, drop the socket, reconnect, resume, read until stop.
async fn storm_client(index: usize, connection: Connected, shared: Arc<Shared>) {
    let book = &shared.book;
    let encoding = shared.connector.encoding();
    let mut ledger = ClientLedger::new(index, book.membership.guilds_of(index), true);
    let mut stream = connection.stream;
    if let ReadEnd::Closed(reason) =
        receive(&mut stream, &mut ledger, book, encoding, &shared.storm).await
    {
        book.disconnects.add(format!("before the storm: {reason}"));
        shared.storm.cancelled().await;
    }
    let dropped_at = now_ns();
    drop(stream);
    let positions: Vec<(String, u64)> = ledger.positions(&book.membership).into_iter().collect();
    ledger.expect_resumes(dropped_at);
    let Some(mut stream) = reconnect(index, &shared, &positions).await else {
        return;
    };
    if let ReadEnd::Closed(reason) =
        receive(&mut stream, &mut ledger, book, encoding, &shared.stop).await
    {
        book.disconnects.add(format!("after resume: {reason}"));
    }
}

/// Connects again with growing pauses until it works or the run stops.
async fn reconnect(index: usize, shared: &Shared, resume: &[(String, u64)]) -> Option<WsStream> {
    let mut backoff = Duration::from_millis(25);
    loop {
        if shared.stop.is_cancelled() {
            return None;
        }
        let user = &shared.users[index];
        match shared.connector.connect_resuming(index, user, resume).await {
            Ok(connected) => return Some(connected.stream),
            Err(failure) => shared.reconnect_failures.add(failure),
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
