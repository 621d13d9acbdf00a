//! `idle`: open N authenticated connections at the ramp rate, hold them for the duration
//! (answering pings, counting any connection the server drops), and report the connect rate,
//! handshake latency, failures by reason and the server's memory per connection. The CPU
//! window starts [`SETTLE`] after the last connection, so the tail of the connect phase (its
//! last writes, the presence diffs coalesced during it) is not counted as idle.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::fanout::{read_client, receiver_specs};
use super::{CostSamples, Setup, connect_all, finish_tasks, server_cost, summary};
use crate::clock::now_ns;
use crate::config::{LoadShape, RunConfig, UserSource};
use crate::delivery::{ClientLedger, DeliveryBook, Window};
use crate::error::LoadTestError;
use crate::membership::{Membership, new_nonce};
use crate::progress::Live;
use crate::report::Report;
use crate::stats::Tally;
use crate::users::provision;

/// Between the last connection and the start of the measured hold.
pub const SETTLE: Duration = Duration::from_secs(2);

pub async fn run(
    config: &RunConfig,
    shape: &LoadShape,
    setup: Setup,
    source: &UserSource,
) -> Result<Report, LoadTestError> {
    let live = Live::new(config.progress);
    let membership = Arc::new(Membership::new(
        &new_nonce(),
        shape.clients,
        shape.guilds,
        shape.guilds_per_client,
    ));
    live.phase("users", shape.clients as u64);
    let users = Arc::new(provision(source, &setup.http_base(), receiver_specs(&membership)).await?);
    let failures = Arc::new(Tally::default());
    let mut samples = CostSamples {
        before_connect: setup.watcher.sample(),
        ..CostSamples::default()
    };
    live.phase("connecting", users.len() as u64);
    let outcome = connect_all(
        &setup.connector,
        &users,
        config.ramp_per_sec,
        &failures,
        &live,
    )
    .await;
    samples.after_connect = setup.watcher.sample();

    let now = now_ns();
    let book = Arc::new(DeliveryBook::new(
        membership.clone(),
        Window {
            start_ns: now,
            end_ns: now,
        },
    ));
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for (index, slot) in outcome.connected.into_iter().enumerate() {
        let Some(connection) = slot else { continue };
        let ledger = ClientLedger::new(index, membership.guilds_of(index), false);
        tasks.spawn(read_client(
            connection.stream,
            ledger,
            book.clone(),
            setup.connector.encoding(),
            stop.clone(),
        ));
    }
    live.phase("holding", config.duration.as_secs());
    let held = outcome.stats.connected;
    let watch_book = book.clone();
    let ticker = live.spawn_ticker(move |_| {
        format!(
            "{held} connected, {} dropped",
            watch_book.disconnects.total()
        )
    });
    tokio::time::sleep(SETTLE).await;
    samples.window_start = setup.watcher.sample();
    tokio::time::sleep(config.duration).await;
    samples.window_end = setup.watcher.sample();
    samples.window = config.duration;
    stop.cancel();
    drop(ticker);
    finish_tasks(&mut tasks).await;
    live.finish();

    let mut all_failures = failures.snapshot();
    for (reason, count) in book.disconnects.snapshot() {
        *all_failures
            .entry(format!("dropped while held: {reason}"))
            .or_insert(0) += count;
    }
    Ok(Report {
        run: summary(config, shape, &setup.targets),
        server: server_cost(&setup.watcher, &samples, held, None),
        connections: outcome.stats,
        failures: all_failures,
        ..Report::default()
    })
}
