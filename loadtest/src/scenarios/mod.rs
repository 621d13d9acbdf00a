//! The scenarios and what they share: opening many connections at a ramp rate, turning
//! watched-process samples into server cost, and waiting on live counters.

pub mod abuse;
pub mod abusers;
pub mod ceiling;
pub mod fanout;
pub mod idle;
pub mod storm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::config::{LoadShape, RunConfig};
use crate::connect::{Connected, Connector, Target};
use crate::error::LoadTestError;
use crate::progress::Live;
use crate::report::{ConnectionStats, RunSummary, ServerCost};
use crate::stats::{Tally, latency::summarize};
use crate::users::VirtualUser;
use crate::watch::{Sample, Watcher};

/// Where clients go and how they authenticate, resolved for one run.
pub struct Setup {
    pub targets: Vec<Target>,
    pub connector: Arc<Connector>,
    pub watcher: Watcher,
}

impl Setup {
    /// Parses and resolves targets, and resolves watch targets.
    pub async fn new(
        config: &RunConfig,
        urls: &[String],
        watcher: Watcher,
    ) -> Result<Setup, LoadTestError> {
        let targets = urls
            .iter()
            .map(|u| Target::parse(u).map_err(LoadTestError::Config))
            .collect::<Result<Vec<_>, _>>()?;
        let connector = Connector::new(
            &targets,
            &config.source_addrs,
            config.encoding,
            config.connect_timeout,
        )
        .await?
        .with_protocol(config.protocol);
        Ok(Setup {
            targets,
            connector: Arc::new(connector),
            watcher,
        })
    }

    /// `http://host:port` of the first target (dev login).
    pub fn http_base(&self) -> String {
        self.targets
            .first()
            .map(Target::http_base)
            .unwrap_or_default()
    }
}

/// Connections opened by [`connect_all`], by client index.
pub struct ConnectOutcome {
    pub connected: Vec<Option<Connected>>,
    pub stats: ConnectionStats,
}

/// Opens a connection per user, starting attempt `i` at `i / ramp` seconds; failures are
/// counted in `failures` by reason.
pub async fn connect_all(
    connector: &Arc<Connector>,
    users: &Arc<Vec<VirtualUser>>,
    ramp_per_sec: f64,
    failures: &Arc<Tally>,
    live: &Live,
) -> ConnectOutcome {
    let started = Instant::now();
    let mut attempts = JoinSet::new();
    for index in 0..users.len() {
        let (connector, users) = (connector.clone(), users.clone());
        let at = started + Duration::from_secs_f64(index as f64 / ramp_per_sec);
        attempts.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            (index, connector.connect(index, &users[index]).await)
        });
    }
    let mut connected: Vec<Option<Connected>> = (0..users.len()).map(|_| None).collect();
    let mut handshakes =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid");
    let mut ok = 0u64;
    while let Some(joined) = attempts.join_next().await {
        let Ok((index, result)) = joined else {
            failures.add("connect task failed");
            continue;
        };
        match result {
            Ok(c) => {
                let micros = u64::try_from(c.handshake.as_micros()).unwrap_or(u64::MAX);
                handshakes.saturating_record(micros.max(1));
                connected[index] = Some(c);
                ok += 1;
            }
            Err(failure) => failures.add(failure),
        }
        live.set_position(ok);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let attempted = users.len() as u64;
    ConnectOutcome {
        connected,
        stats: ConnectionStats {
            attempted,
            connected: ok,
            failed: attempted - ok,
            ramp_s: elapsed,
            connect_rate_per_s: if elapsed > 0.0 {
                ok as f64 / elapsed
            } else {
                0.0
            },
            handshake: summarize(&handshakes),
        },
    }
}

/// Samples of the watched processes at the points a scenario cares about.
#[derive(Debug, Clone, Copy, Default)]
pub struct CostSamples {
    pub before_connect: Sample,
    pub after_connect: Sample,
    pub window_start: Sample,
    pub window_end: Sample,
    pub window: Duration,
}

/// Turns samples into the report's server cost; `None` when nothing was watched.
pub fn server_cost(
    watcher: &Watcher,
    samples: &CostSamples,
    connections: u64,
    deliveries: Option<u64>,
) -> Option<ServerCost> {
    if watcher.is_empty() {
        return None;
    }
    let cpu_us = samples
        .window_end
        .cpu_us
        .saturating_sub(samples.window_start.cpu_us);
    let window_s = samples.window.as_secs_f64();
    let rss_per = match (
        samples.before_connect.rss_kib,
        samples.after_connect.rss_kib,
    ) {
        (Some(before), Some(after)) if connections > 0 => {
            Some((after as f64 - before as f64) / connections as f64)
        }
        _ => None,
    };
    Some(ServerCost {
        watched: watcher.describe(),
        window_s,
        cpu_us,
        cpu_percent_of_one_core: if window_s > 0.0 {
            cpu_us as f64 / (window_s * 10_000.0)
        } else {
            0.0
        },
        cpu_us_per_delivery: deliveries
            .filter(|d| *d > 0)
            .map(|d| cpu_us as f64 / d as f64),
        rss_kib_before_connect: samples.before_connect.rss_kib,
        rss_kib_after_connect: samples.after_connect.rss_kib,
        rss_kib_per_connection: rss_per,
    })
}

/// The report's description of the run.
pub fn summary(config: &RunConfig, shape: &LoadShape, targets: &[Target]) -> RunSummary {
    RunSummary {
        scenario: config.scenario.name().to_owned(),
        targets: targets.iter().map(|t| t.url.clone()).collect(),
        encoding: format!("{:?}", config.encoding).to_lowercase(),
        clients: shape.clients,
        guilds: shape.guilds,
        guilds_per_client: shape.guilds_per_client,
        senders: shape.senders,
        rate_per_s: shape.rate,
        message_bytes: shape.message_bytes,
        warmup_s: config.warmup.as_secs_f64(),
        duration_s: config.duration.as_secs_f64(),
    }
}

/// Polls `done` every few milliseconds until it holds or `deadline` passes; true if it held.
pub async fn wait_until(deadline: Instant, done: impl Fn() -> bool) -> bool {
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Waits for client tasks to end after their stop token fired; aborts stragglers.
pub async fn finish_tasks(tasks: &mut JoinSet<()>) {
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), all)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}
