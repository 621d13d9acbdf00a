//! `abuse` (issue #14, "Tests"): the fanout load three times — alone (the baseline), then while
//! [`super::abusers::ABUSERS`] abusive clients flood the first target, then alone again (the
//! second baseline: the first runs on a fresh gateway, whose p99 is often the worst of the
//! three, so a change is judged against both) — and the well-behaved clients' p99 and
//! delivery ratio of the runs side by side, with the watched gateway's RSS at the end. The
//! abusers (`abusers.rs`) run in a second `loadtest abusers` process this one starts, from
//! source addresses of their own, so their client-side work and their handshakes are not the
//! measured clients'. The server's limits (per-user send, handshake and history budgets,
//! resume bounds, per-address handshake limit, byte-bounded queues) should keep the
//! well-behaved clients within 10% of their baseline.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::abusers::{AbuserTotals, READY_LINE, TOTALS_PREFIX};
use super::{Setup, fanout};
use crate::config::{LoadShape, RunConfig, UserSource};
use crate::error::LoadTestError;
use crate::report::Report;
use crate::watch::Watcher;

/// How long the abusers' process may take to create its users and start.
const CHILD_START: Duration = Duration::from_secs(60);

/// What the abusers did, and the comparison with the baseline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbuseStats {
    #[serde(flatten)]
    pub totals: AbuserTotals,
    pub baseline_p99_ms: f64,
    pub abused_p99_ms: f64,
    /// The baseline run again, after the abusers stopped.
    pub after_p99_ms: f64,
    pub baseline_delivery_ratio: f64,
    pub abused_delivery_ratio: f64,
    pub after_delivery_ratio: f64,
    /// Watched processes' RSS after the baseline run and at the end of the abused run.
    pub rss_kib_after_baseline: Option<u64>,
    pub rss_kib_end: Option<u64>,
}

/// The runs' setups: before, during and after the abuse.
pub struct Setups {
    pub baseline: Setup,
    pub abused: Setup,
    pub after: Setup,
}

/// Runs the baseline fanout, the same fanout while a `loadtest abusers` process floods, and
/// the baseline again; prints the runs' numbers ([`AbuseStats`]) and returns the abused run's
/// report.
pub async fn run(
    config: &RunConfig,
    shape: &LoadShape,
    setups: Setups,
    source: &UserSource,
) -> Result<Report, LoadTestError> {
    let Setups {
        baseline: baseline_setup,
        abused: abused_setup,
        after: after_setup,
    } = setups;
    let watcher = Watcher::resolve(&config.watch)?;
    let baseline = fanout::run(config, shape, baseline_setup, source).await?;
    let rss_kib_after_baseline = watcher.sample().rss_kib;

    let abusers = AbusersProcess::start(config).await?;
    let abused = fanout::run(config, shape, abused_setup, source).await;
    let rss_kib_end = watcher.sample().rss_kib;
    let totals = abusers.stop().await?;
    let abused = abused?;
    let after = fanout::run(config, shape, after_setup, source).await?;
    let p99 = |r: &Report| r.delivery.as_ref().map_or(0.0, |d| d.latency.p99_ms);
    let ratio = |r: &Report| r.delivery.as_ref().map_or(0.0, |d| d.delivery_ratio);
    let stats = AbuseStats {
        totals,
        baseline_p99_ms: p99(&baseline),
        abused_p99_ms: p99(&abused),
        after_p99_ms: p99(&after),
        baseline_delivery_ratio: ratio(&baseline),
        abused_delivery_ratio: ratio(&abused),
        after_delivery_ratio: ratio(&after),
        rss_kib_after_baseline,
        rss_kib_end,
    };
    println!("{}", render(&stats));
    Ok(abused)
}

/// The `loadtest abusers` child: started, told to stop by closing its stdin.
struct AbusersProcess {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl AbusersProcess {
    /// Starts this executable as `loadtest abusers` against the same first target and users,
    /// and waits for its ready line.
    async fn start(config: &RunConfig) -> Result<Self, LoadTestError> {
        let fail = |what: String| LoadTestError::Abusers(what);
        let exe = std::env::current_exe().map_err(|e| fail(format!("own executable: {e}")))?;
        let mut command = match abusers_nice() {
            Some(nice) => {
                let mut command = Command::new("nice");
                command.arg("-n").arg(nice.to_string()).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(child_args(config))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(CHILD_START, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line == READY_LINE {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            return Err(fail("did not start (see its output above)".into()));
        }
        Ok(AbusersProcess { child, lines })
    }

    /// Closes its stdin, reads its totals and waits for it to exit.
    async fn stop(mut self) -> Result<AbuserTotals, LoadTestError> {
        drop(self.child.stdin.take());
        let totals = tokio::time::timeout(CHILD_START, async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                if let Some(json) = line.strip_prefix(TOTALS_PREFIX) {
                    return serde_json::from_str::<AbuserTotals>(json).ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        totals.ok_or_else(|| LoadTestError::Abusers("ended without its totals".into()))
    }
}

/// `ABUSERS_NICE`: the niceness to start the abusers' process with (coreutils `nice`), so on
/// one shared machine it takes CPU only when the gateway and the measured clients leave some,
/// as abusers on other hosts would; unset or 0: the same priority as this process.
fn abusers_nice() -> Option<u32> {
    std::env::var("ABUSERS_NICE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0)
}

/// The child's command line: the first target, the same users, encoding and timeouts; it runs
/// until its stdin closes (the duration is only a backstop).
fn child_args(config: &RunConfig) -> Vec<String> {
    let backstop = config.effective_timeout();
    let mut args: Vec<String> = vec!["abusers".into(), "--stop-on-stdin-eof".into()];
    if let Some(target) = config.targets.first() {
        args.extend(["--target".into(), target.clone()]);
    }
    let encoding = match config.encoding {
        chat_shared::protocol::codec::Encoding::Json => "json",
        chat_shared::protocol::codec::Encoding::MsgPack => "msgpack",
    };
    args.extend(["--encoding".into(), encoding.into()]);
    args.extend([
        "--connect-timeout".into(),
        format!("{}ms", config.connect_timeout.as_millis()),
        "--duration".into(),
        format!("{}s", backstop.as_secs()),
        "--timeout".into(),
        format!("{}s", backstop.as_secs() * 2 + 60),
        "--quiet".into(),
    ]);
    if !config.source_addrs.is_empty() {
        let addrs: Vec<String> = config
            .source_addrs
            .iter()
            .map(ToString::to_string)
            .collect();
        args.extend(["--source-addrs".into(), addrs.join(",")]);
    }
    if config.allow_remote {
        args.push("--allow-remote".into());
    }
    if let UserSource::Minted {
        redis_url,
        jwt_secret,
    } = &config.users
    {
        args.extend([
            "--redis-url".into(),
            redis_url.clone(),
            "--jwt-secret".into(),
            jwt_secret.clone(),
        ]);
    }
    args
}

/// The comparison as a text table (and one JSON line for scripts).
pub fn render(s: &AbuseStats) -> String {
    use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "abuse",
        "without abusers",
        "with abusers",
        "without, after",
    ]);
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
            "{:.2} ({} / {})",
            s.abused_p99_ms,
            change(s.baseline_p99_ms, s.abused_p99_ms),
            change(s.after_p99_ms, s.abused_p99_ms)
        ),
        format!("{:.2}", s.after_p99_ms),
    ]);
    table.add_row(vec![
        "delivery ratio".to_owned(),
        format!("{:.5}", s.baseline_delivery_ratio),
        format!("{:.5}", s.abused_delivery_ratio),
        format!("{:.5}", s.after_delivery_ratio),
    ]);
    let kib = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} KiB"));
    table.add_row(vec![
        "watched RSS".to_owned(),
        kib(s.rss_kib_after_baseline),
        kib(s.rss_kib_end),
        String::new(),
    ]);
    table.add_row(vec![
        format!("{} abusers", s.totals.abusers),
        String::new(),
        format!(
            "handshakes {}/{} accepted, frames {}, history {} ({} refused)",
            s.totals.handshakes_accepted,
            s.totals.handshakes_attempted,
            s.totals.frames_sent,
            s.totals.history_requests,
            s.totals.history_refused
        ),
        String::new(),
    ]);
    let json = serde_json::to_string(s).unwrap_or_default();
    format!("{table}\nabuse-json {json}")
}
