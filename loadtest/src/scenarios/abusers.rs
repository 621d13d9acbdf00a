//! `abusers`: only the abusive clients of the `abuse` scenario, meant to run as a process of
//! their own beside the measured clients (the `abuse` scenario spawns it; `bench.sh` or a
//! person can run it by hand), so the abusers' own client-side work does not run in the
//! measuring process. Each abuser, a signed-in member with a script, loops: open a WebSocket
//! (handshake flood), fire a burst of sends and `resume` frames (positions 0: full replays),
//! drop the socket without reading; beside it a task pulls history pages back to back. On
//! loopback each abuser connects from an address of its own (127.0.1.1 + index), never one of
//! the measured clients' 127.0.0.1–.4, so the per-address handshake limit counts it apart.
//!
//! Protocol with a parent: one line `abusers-ready` once the users exist and the floods run,
//! then, when the time is up (or stdin closes with `--stop-on-stdin-eof`), one line
//! `abusers-json {…}` with [`AbuserTotals`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use chat_shared::protocol::{ClientFrame, ResumeFrame, SendFrame};
use futures::SinkExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Setup, finish_tasks};
use crate::config::{RunConfig, UserSource};
use crate::connect::Connector;
use crate::error::LoadTestError;
use crate::membership::new_nonce;
use crate::users::{ClientAuth, UserSpec, VirtualUser, provision};
use crate::wire::encode_client;

/// Abusive clients.
pub const ABUSERS: usize = 20;
/// Sends and resumes each abuser fires per connection before dropping it.
const SENDS_PER_SOCKET: usize = 50;
const RESUMES_PER_SOCKET: usize = 10;
/// Guilds each abuser is a member of (its own: it floods, resumes and pages those).
const GUILDS_PER_ABUSER: usize = 4;
/// The line a child prints once its floods run, and the prefix of its totals line.
pub const READY_LINE: &str = "abusers-ready";
pub const TOTALS_PREFIX: &str = "abusers-json ";

/// What the abusers did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AbuserTotals {
    pub abusers: u64,
    pub handshakes_attempted: u64,
    pub handshakes_accepted: u64,
    pub frames_sent: u64,
    pub history_requests: u64,
    pub history_refused: u64,
}

#[derive(Default)]
struct Counters {
    handshakes_attempted: AtomicU64,
    handshakes_accepted: AtomicU64,
    frames_sent: AtomicU64,
    history_requests: AtomicU64,
    history_refused: AtomicU64,
}

impl Counters {
    fn totals(&self, abusers: usize) -> AbuserTotals {
        AbuserTotals {
            abusers: abusers as u64,
            handshakes_attempted: self.handshakes_attempted.load(Relaxed),
            handshakes_accepted: self.handshakes_accepted.load(Relaxed),
            frames_sent: self.frames_sent.load(Relaxed),
            history_requests: self.history_requests.load(Relaxed),
            history_refused: self.history_refused.load(Relaxed),
        }
    }
}

/// The `abusers` process: provision, say ready, flood until `--duration` passes (or stdin
/// closes), print the totals.
pub async fn run(
    config: &RunConfig,
    setup: Setup,
    stop_on_stdin_eof: bool,
) -> Result<(), LoadTestError> {
    let base = setup.http_base();
    let connector = Arc::new(abuser_connector(config, &setup).await?);
    let abusers = Arc::new(abusive_users(&config.users, &base).await?);
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for index in 0..abusers.len() {
        let source = connector_source(config, &setup, index);
        tasks.spawn(flood_socket(
            index,
            connector.clone(),
            abusers.clone(),
            counters.clone(),
            stop.clone(),
        ));
        tasks.spawn(flood_history(
            index,
            source,
            base.clone(),
            abusers.clone(),
            counters.clone(),
            stop.clone(),
        ));
    }
    println!("{READY_LINE}");
    tokio::select! {
        _ = tokio::time::sleep(config.duration) => {}
        _ = stdin_closed(), if stop_on_stdin_eof => {}
    }
    stop.cancel();
    finish_tasks(&mut tasks).await;
    let totals = counters.totals(abusers.len());
    let json = serde_json::to_string(&totals).unwrap_or_default();
    println!("{TOTALS_PREFIX}{json}");
    Ok(())
}

/// Resolves when stdin reaches its end (the parent closed it) or fails.
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buffer).await {
        if n == 0 {
            return;
        }
    }
}

/// Each abuser's source address on loopback targets: 127.0.1.1 + index.
fn loopback_sources(config: &RunConfig, setup: &Setup) -> Option<Vec<IpAddr>> {
    let loopback = setup.targets.iter().all(|t| t.is_loopback());
    (loopback && config.source_addrs.is_empty()).then(|| {
        (0..ABUSERS)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + i as u8)))
            .collect()
    })
}

/// The source address abuser `index`'s HTTP requests bind to, when it has one of its own.
fn connector_source(config: &RunConfig, setup: &Setup, index: usize) -> Option<IpAddr> {
    match loopback_sources(config, setup) {
        Some(sources) => sources.get(index).copied(),
        None if config.source_addrs.is_empty() => None,
        None => Some(config.source_addrs[index % config.source_addrs.len()]),
    }
}

/// The abusers' connector: their own source addresses (see the module comment).
async fn abuser_connector(config: &RunConfig, setup: &Setup) -> Result<Connector, LoadTestError> {
    let sources = loopback_sources(config, setup).unwrap_or_else(|| config.source_addrs.clone());
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

/// One abuser's history side: the largest pages, back to back (a refusal's Retry-After is
/// ignored, as an abuser would).
async fn flood_history(
    index: usize,
    source: Option<IpAddr>,
    base: String,
    abusers: Arc<Vec<VirtualUser>>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let user = &abusers[index];
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .local_address(source)
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
