//! `abuse` (issue #14, "Tests"): the fanout load twice — first alone (the baseline), then while
//! [`ABUSERS`] abusive clients flood the first target — and the well-behaved clients' p99 and
//! delivery ratio of both runs side by side, with the watched gateway's RSS at the end. Each
//! abuser, as a signed-in member with a script, loops: open a WebSocket (handshake flood),
//! fire a burst of sends and `resume` frames (positions 0: full replays), drop the socket
//! without reading; beside it a task pulls history pages as fast as they come. The server's
//! limits (per-user send budget, resume bounds, per-IP handshake limit, byte-bounded queues)
//! should keep the well-behaved clients within 10% of their baseline.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use chat_shared::protocol::{ClientFrame, ResumeFrame, SendFrame};
use futures::SinkExt;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Setup, fanout, finish_tasks};
use crate::config::{LoadShape, RunConfig, UserSource};
use crate::connect::Connector;
use crate::error::LoadTestError;
use crate::membership::new_nonce;
use crate::report::Report;
use crate::users::{ClientAuth, UserSpec, VirtualUser, provision};
use crate::watch::Watcher;
use crate::wire::encode_client;

/// Abusive clients beside the well-behaved ones.
pub const ABUSERS: usize = 20;
/// Sends and resumes each abuser fires per connection before dropping it.
const SENDS_PER_SOCKET: usize = 50;
const RESUMES_PER_SOCKET: usize = 10;
/// Guilds each abuser is a member of (its own: it floods, resumes and pages those).
const GUILDS_PER_ABUSER: usize = 4;

/// What the abusers did, and the comparison with the baseline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbuseStats {
    pub abusers: u64,
    pub handshakes_attempted: u64,
    pub handshakes_accepted: u64,
    pub frames_sent: u64,
    pub history_requests: u64,
    pub history_refused: u64,
    pub baseline_p99_ms: f64,
    pub abused_p99_ms: f64,
    pub baseline_delivery_ratio: f64,
    pub abused_delivery_ratio: f64,
    /// Watched processes' RSS after the baseline run and at the end of the abused run.
    pub rss_kib_after_baseline: Option<u64>,
    pub rss_kib_end: Option<u64>,
}

#[derive(Default)]
struct Counters {
    handshakes_attempted: AtomicU64,
    handshakes_accepted: AtomicU64,
    frames_sent: AtomicU64,
    history_requests: AtomicU64,
    history_refused: AtomicU64,
}

/// Runs the baseline fanout, then the same fanout under abuse; prints both runs' numbers
/// ([`AbuseStats`]) and returns the abused run's report.
pub async fn run(
    config: &RunConfig,
    shape: &LoadShape,
    baseline_setup: Setup,
    abused_setup: Setup,
    source: &UserSource,
) -> Result<Report, LoadTestError> {
    let watcher = Watcher::resolve(&config.watch)?;
    let baseline = fanout::run(config, shape, baseline_setup, source).await?;
    let rss_kib_after_baseline = watcher.sample().rss_kib;

    let base = abused_setup.http_base();
    let connector = Arc::new(abuser_connector(config, &abused_setup).await?);
    let abusers = Arc::new(abusive_users(source, &base).await?);
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for index in 0..abusers.len() {
        tasks.spawn(flood_socket(
            index,
            connector.clone(),
            abusers.clone(),
            counters.clone(),
            stop.clone(),
        ));
        tasks.spawn(flood_history(
            index,
            base.clone(),
            abusers.clone(),
            counters.clone(),
            stop.clone(),
        ));
    }
    let abused = fanout::run(config, shape, abused_setup, source).await;
    let rss_kib_end = watcher.sample().rss_kib;
    stop.cancel();
    finish_tasks(&mut tasks).await;
    let abused = abused?;
    let p99 = |r: &Report| r.delivery.as_ref().map_or(0.0, |d| d.latency.p99_ms);
    let ratio = |r: &Report| r.delivery.as_ref().map_or(0.0, |d| d.delivery_ratio);
    let stats = AbuseStats {
        abusers: abusers.len() as u64,
        handshakes_attempted: counters.handshakes_attempted.load(Relaxed),
        handshakes_accepted: counters.handshakes_accepted.load(Relaxed),
        frames_sent: counters.frames_sent.load(Relaxed),
        history_requests: counters.history_requests.load(Relaxed),
        history_refused: counters.history_refused.load(Relaxed),
        baseline_p99_ms: p99(&baseline),
        abused_p99_ms: p99(&abused),
        baseline_delivery_ratio: ratio(&baseline),
        abused_delivery_ratio: ratio(&abused),
        rss_kib_after_baseline,
        rss_kib_end,
    };
    println!("{}", render(&stats));
    Ok(abused)
}

/// The comparison as a text table (and one JSON line for scripts).
pub fn render(s: &AbuseStats) -> String {
    use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["abuse", "without abusers", "with abusers"]);
    let change = |before: f64, after: f64| {
        if before > 0.0 {
            format!("{:+.1}%", (after - before) / before * 100.0)
        } else {
            "-".to_owned()
        }
    };
    table.add_row(vec![
        "well-behaved p99 (ms)".to_owned(),
        format!("{:.2}", s.baseline_p99_ms),
        format!(
            "{:.2} ({})",
            s.abused_p99_ms,
            change(s.baseline_p99_ms, s.abused_p99_ms)
        ),
    ]);
    table.add_row(vec![
        "delivery ratio".to_owned(),
        format!("{:.5}", s.baseline_delivery_ratio),
        format!("{:.5}", s.abused_delivery_ratio),
    ]);
    let kib = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} KiB"));
    table.add_row(vec![
        "watched RSS".to_owned(),
        kib(s.rss_kib_after_baseline),
        kib(s.rss_kib_end),
    ]);
    table.add_row(vec![
        format!("{} abusers", s.abusers),
        String::new(),
        format!(
            "handshakes {}/{} accepted, frames {}, history {} ({} refused)",
            s.handshakes_accepted,
            s.handshakes_attempted,
            s.frames_sent,
            s.history_requests,
            s.history_refused
        ),
    ]);
    let json = serde_json::to_string(s).unwrap_or_default();
    format!("{table}\nabuse-json {json}")
}

/// The abusers' connector: on loopback targets each abuser connects from an address of its own
/// (127.0.1.1 + index), like clients on other hosts, so the per-address handshake limit
/// counts each abuser on its own, not against the well-behaved clients' 127.0.0.1–.4.
async fn abuser_connector(config: &RunConfig, setup: &Setup) -> Result<Connector, LoadTestError> {
    let loopback = setup.targets.iter().all(|t| t.is_loopback());
    let sources: Vec<IpAddr> = if loopback && config.source_addrs.is_empty() {
        (0..ABUSERS)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + i as u8)))
            .collect()
    } else {
        config.source_addrs.clone()
    };
    Connector::new(
        &setup.targets,
        &sources,
        config.encoding,
        config.connect_timeout,
    )
    .await
}

async fn abusive_users(source: &UserSource, base: &str) -> Result<Vec<VirtualUser>, LoadTestError> {
    let nonce = new_nonce();
    let specs = (0..ABUSERS)
        .map(|i| UserSpec {
            id: format!("ab{nonce}u{i}"),
            guilds: (0..GUILDS_PER_ABUSER)
                .map(|g| format!("ab{nonce}g{i}x{g}"))
                .collect(),
        })
        .collect();
    provision(source, base, specs).await
}

/// One abuser's socket side: connect, burst, drop, again.
async fn flood_socket(
    index: usize,
    connector: Arc<Connector>,
    abusers: Arc<Vec<VirtualUser>>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let user = &abusers[index];
    let encoding = connector.encoding();
    let frames = burst(user);
    while !stop.is_cancelled() {
        counters.handshakes_attempted.fetch_add(1, Relaxed);
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            connected = connector.connect(index, user) => connected,
        };
        let Ok(mut connected) = connected else {
            // Refused (rate limited, busy): try again at once, as an abuser would.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        counters.handshakes_accepted.fetch_add(1, Relaxed);
        for frame in &frames {
            let Ok(message) = encode_client(frame, encoding) else {
                continue;
            };
            if connected.stream.feed(message).await.is_err() {
                break;
            }
            counters.frames_sent.fetch_add(1, Relaxed);
        }
        let _ = connected.stream.flush().await;
        // Dropped without reading a byte of the answers or replays.
    }
}

/// The frames one abusive socket fires: sends into its guilds, then full-replay resumes.
fn burst(user: &VirtualUser) -> Vec<ClientFrame> {
    let sends = (0..SENDS_PER_SOCKET).map(|i| {
        ClientFrame::Send(SendFrame {
            reference: Some(format!("a{i}")),
            guild_id: user.guilds.get(i % user.guilds.len().max(1)).cloned(),
            text: Some("x".repeat(512)),
            ..SendFrame::default()
        })
    });
    let positions: BTreeMap<String, u64> = user.guilds.iter().map(|g| (g.clone(), 0)).collect();
    let resumes = (0..RESUMES_PER_SOCKET).map(|_| {
        ClientFrame::Resume(ResumeFrame {
            positions: positions.clone(),
        })
    });
    sends.chain(resumes).collect()
}

/// One abuser's history side: the largest pages, back to back.
async fn flood_history(
    index: usize,
    base: String,
    abusers: Arc<Vec<VirtualUser>>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let user = &abusers[index];
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut page = 0usize;
    while !stop.is_cancelled() {
        let guild = &user.guilds[page % user.guilds.len().max(1)];
        page += 1;
        let mut request = http.get(format!("{base}/api/guilds/{guild}/messages?limit=200"));
        if let ClientAuth::Bearer(token) = &user.auth {
            request = request.bearer_auth(token);
        }
        counters.history_requests.fetch_add(1, Relaxed);
        let answered = tokio::select! {
            _ = stop.cancelled() => return,
            answered = request.send() => answered,
        };
        if !answered.is_ok_and(|r| r.status().is_success()) {
            counters.history_refused.fetch_add(1, Relaxed);
        }
    }
}
