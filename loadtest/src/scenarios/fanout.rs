//! `fanout`: N clients in G guilds, S of them sending at a total of R messages/s open-loop;
//! every member records send→receive latency of every message of its guilds. Messages sent
//! during the warm-up are delivered but not measured. After the last send the run waits (up
//! to the drain time) for every owed delivery, then reports ratio, duplicates, order and
//! latency. The ceiling scenario runs this same load against the bare server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chat_shared::protocol::codec::Encoding;
use futures::{Stream, StreamExt};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::{CostSamples, Setup, connect_all, finish_tasks, server_cost, summary, wait_until};
use crate::clock::{instant_at, now_ns};
use crate::config::{LoadShape, RunConfig, UserSource};
use crate::connect::Connected;
use crate::delivery::{ClientLedger, DeliveryBook, ReadEnd, Window, receive};
use crate::error::LoadTestError;
use crate::membership::{Membership, new_nonce};
use crate::progress::{Live, Rate};
use crate::report::{DeliveryStats, Report};
use crate::sender::{MessageCounter, SenderPlan, run_sender};
use crate::stats::Tally;
use crate::users::{UserSpec, provision};

/// Time between the end of connecting and the first scheduled send.
pub const SEND_LEAD: Duration = Duration::from_millis(200);

/// The user specs of the receiving clients of `membership`.
pub fn receiver_specs(membership: &Membership) -> Vec<UserSpec> {
    (0..membership.clients())
        .map(|i| UserSpec {
            id: format!("lt{}u{i}", membership.nonce()),
            guilds: membership.guild_ids_of(i),
        })
        .collect()
}

/// Runs the fanout load.
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
    live.phase("users", shape.clients as u64);
    let users = provision(source, &setup.http_base(), receiver_specs(&membership)).await?;
    let users = Arc::new(users);
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

    let send_start = now_ns() + duration_ns(SEND_LEAD);
    let window_start = send_start + duration_ns(config.warmup);
    let window = Window {
        start_ns: window_start,
        end_ns: window_start + duration_ns(config.duration),
    };
    let book = Arc::new(DeliveryBook::new(membership.clone(), window));
    let stop = CancellationToken::new();
    let plans = plan_senders(
        shape,
        &membership,
        &outcome.connected,
        send_start,
        window.end_ns,
    );
    if plans.len() < shape.senders {
        failures.add(format!(
            "senders missing: {} of {} (their clients did not connect)",
            shape.senders - plans.len(),
            shape.senders
        ));
    }
    let mut tasks = JoinSet::new();
    spawn_clients(
        &mut tasks,
        outcome.connected,
        plans,
        &book,
        setup.connector.encoding(),
        &stop,
    );

    live.phase("warm-up", config.warmup.as_secs());
    let ticker = live.spawn_ticker(rate_line(book.clone()));
    tokio::time::sleep_until(instant_at(window.start_ns).into()).await;
    samples.window_start = setup.watcher.sample();
    live.phase("measuring", config.duration.as_secs());
    tokio::time::sleep_until(instant_at(window.end_ns).into()).await;
    samples.window_end = setup.watcher.sample();
    samples.window = config.duration;
    live.phase("draining", shape.drain.as_secs());
    let drain_deadline = instant_at(window.end_ns) + shape.drain;
    wait_until(drain_deadline, || book.complete()).await;
    stop.cancel();
    drop(ticker);
    finish_tasks(&mut tasks).await;
    live.finish();

    let delivery = delivery_stats(&book, config.duration);
    let mut all_failures = failures.snapshot();
    merge_book_failures(&mut all_failures, &book);
    Ok(Report {
        run: summary(config, shape, &setup.targets),
        server: server_cost(
            &setup.watcher,
            &samples,
            outcome.stats.connected,
            Some(delivery.received),
        ),
        connections: outcome.stats,
        delivery: Some(delivery),
        storm: None,
        failures: all_failures,
        timeline: book.latency.timeline(),
        cdf: book.latency.cdf(),
    })
}

pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sender plans keyed by the client index that sends them, spread over connected clients.
fn plan_senders(
    shape: &LoadShape,
    membership: &Membership,
    connected: &[Option<Connected>],
    start_ns: u64,
    end_ns: u64,
) -> HashMap<usize, SenderPlan> {
    let up: Vec<bool> = connected.iter().map(Option::is_some).collect();
    let anchors = sender_anchors(membership, &up, shape.senders);
    let senders = anchors.len();
    let plans = SenderPlan::spread(
        senders,
        shape.rate,
        start_ns,
        end_ns,
        shape.message_bytes,
        |j| membership.guilds_of(anchors[j]).to_vec(),
    );
    anchors.into_iter().zip(plans).collect()
}

/// The clients that send, one per sender (at most one per connected client): sender `j`'s
/// is the membership's anchor (senders start at guild `j mod G`, so they cover every guild),
/// else the next connected client in the same guild, else any connected client.
fn sender_anchors(membership: &Membership, up: &[bool], senders: usize) -> Vec<usize> {
    let senders = senders.min(up.iter().filter(|u| **u).count());
    let guilds = membership.guild_count().max(1);
    let mut anchors: Vec<usize> = Vec::with_capacity(senders);
    for j in 0..senders {
        let start = membership.sender_anchor(j, senders);
        let free = |i: &usize| up.get(*i).copied().unwrap_or(false) && !anchors.contains(i);
        let same_guild = (start..up.len()).step_by(guilds).find(free);
        let any = (0..up.len()).map(|k| (start + k) % up.len()).find(free);
        if let Some(anchor) = same_guild.or(any) {
            anchors.push(anchor);
        }
    }
    anchors
}

fn spawn_clients(
    tasks: &mut JoinSet<()>,
    connected: Vec<Option<Connected>>,
    mut plans: HashMap<usize, SenderPlan>,
    book: &Arc<DeliveryBook>,
    encoding: Encoding,
    stop: &CancellationToken,
) {
    let counter = Arc::new(MessageCounter::default());
    for (index, slot) in connected.into_iter().enumerate() {
        let Some(connection) = slot else { continue };
        let ledger = ClientLedger::new(index, book.membership.guilds_of(index), true);
        match plans.remove(&index) {
            Some(plan) => {
                let (sink, stream) = connection.stream.split();
                tasks.spawn(run_sender(
                    sink,
                    plan,
                    book.clone(),
                    counter.clone(),
                    encoding,
                    stop.clone(),
                ));
                tasks.spawn(read_client(
                    stream,
                    ledger,
                    book.clone(),
                    encoding,
                    stop.clone(),
                ));
            }
            None => {
                tasks.spawn(read_client(
                    connection.stream,
                    ledger,
                    book.clone(),
                    encoding,
                    stop.clone(),
                ));
            }
        }
    }
}

/// Reads until stopped; an early end is counted as a disconnect.
pub async fn read_client<S>(
    mut stream: S,
    mut ledger: ClientLedger,
    book: Arc<DeliveryBook>,
    encoding: Encoding,
    stop: CancellationToken,
) where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    if let ReadEnd::Closed(reason) = receive(&mut stream, &mut ledger, &book, encoding, &stop).await
    {
        book.disconnects.add(reason);
    }
}

/// The live line: send and delivery rates, failures.
pub fn rate_line(book: Arc<DeliveryBook>) -> impl FnMut(Duration) -> String + Send + 'static {
    let (mut sent, mut delivered) = (Rate::new(), Rate::new());
    move |elapsed| {
        format!(
            "sent {:.0}/s  delivered {:.0}/s  errors {}  disconnects {}",
            sent.per_second(book.sent.load(Relaxed), elapsed),
            delivered.per_second(book.received_all.load(Relaxed), elapsed),
            book.send_errors.total(),
            book.disconnects.total(),
        )
    }
}

/// Delivery figures from the book after the drain.
pub fn delivery_stats(book: &DeliveryBook, measured: Duration) -> DeliveryStats {
    let expected = book.expected.load(Relaxed);
    let received = book.received.load(Relaxed);
    DeliveryStats {
        messages_sent: book.sent.load(Relaxed),
        messages_measured: book.sent_measured.load(Relaxed),
        acks: book.acks.load(Relaxed),
        refused: book.refused.load(Relaxed),
        expected,
        received,
        delivery_ratio: if expected > 0 {
            received as f64 / expected as f64
        } else {
            0.0
        },
        deliveries_per_s: received as f64 / measured.as_secs_f64().max(1e-9),
        duplicates: book.duplicates.load(Relaxed),
        out_of_order: book.out_of_order.load(Relaxed),
        out_of_order_in_resume: book.out_of_order_in_resume.load(Relaxed),
        foreign: book.foreign.load(Relaxed),
        latency: book.latency.percentiles(),
    }
}

/// Adds the book's error codes, disconnects and unanswered sends to the failures table.
pub fn merge_book_failures(
    failures: &mut std::collections::BTreeMap<String, u64>,
    book: &DeliveryBook,
) {
    for (reason, count) in book
        .send_errors
        .snapshot()
        .into_iter()
        .chain(book.disconnects.snapshot())
    {
        *failures.entry(reason).or_insert(0) += count;
    }
    let answered = book.acks.load(Relaxed) + book.refused.load(Relaxed);
    let unanswered = book.sent.load(Relaxed).saturating_sub(answered);
    if unanswered > 0 {
        failures.insert(
            "send: no ack or error by the end of the drain".into(),
            unanswered,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guilds_sent_to(m: &Membership, anchors: &[usize]) -> Vec<usize> {
        let mut guilds: Vec<usize> = anchors.iter().map(|a| m.guilds_of(*a)[0]).collect();
        guilds.sort_unstable();
        guilds
    }

    #[test]
    fn senders_cover_every_guild_and_never_share_a_client() {
        let m = Membership::new("abc", 1000, 10, 1);
        let all_up = vec![true; 1000];
        let mut gaps = all_up.clone();
        // The anchors of senders 0 and 3 are down: each moves to another client of its guild.
        gaps[m.sender_anchor(0, 10)] = false;
        gaps[m.sender_anchor(3, 10)] = false;
        for up in [&all_up, &gaps] {
            let anchors = sender_anchors(&m, up, 10);
            assert_eq!(guilds_sent_to(&m, &anchors), (0..10).collect::<Vec<_>>());
            assert!(anchors.iter().all(|a| up[*a]));
        }
    }

    #[test]
    fn fewer_clients_up_than_senders_gives_one_sender_per_client() {
        let m = Membership::new("abc", 4, 10, 1);
        let cases: [(&[bool], usize); 3] = [
            (&[true, true, true, true], 4),
            (&[false, true, false, true], 2),
            (&[false, false, false, false], 0),
        ];
        for (up, expected) in cases {
            let mut anchors = sender_anchors(&m, up, 10);
            assert_eq!(anchors.len(), expected, "{up:?}");
            anchors.sort_unstable();
            anchors.dedup();
            assert_eq!(anchors.len(), expected, "{up:?}");
        }
    }
}
