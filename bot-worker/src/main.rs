//! The `bot-worker` binary: one bot worker of a distributed deployment, sharing the durable
//! job queue with any number of others over NATS. SIGTERM stops taking jobs and finishes those
//! taken.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use bot_worker::{BotConfig, CommandBot};
use chat_shared::config::{CommonConfig, LimitsConfig};
use chat_shared::nats::{NatsBus, NatsConfig};
use chat_shared::ops::{OpsState, shutdown_signal};
use chat_shared::telemetry::init_tracing;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Answers bot requests from the durable queue (distributed mode; needs NATS_URL).
#[derive(Debug, Parser)]
#[command(name = "bot-worker", version, about)]
struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:9092")]
    listen_addr: SocketAddr,
    /// Jobs answered at the same time by this worker.
    #[arg(long, env = "BOT_CONCURRENCY", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    bot_concurrency: u32,
    /// Longest wait for one answer, in milliseconds.
    #[arg(long, env = "BOT_JOB_TIMEOUT_MS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    bot_job_timeout_ms: u64,
    /// First retry delay in milliseconds; doubles on each attempt.
    #[arg(long, env = "BOT_RETRY_BASE_MS", default_value_t = 2_000)]
    bot_retry_base_ms: u64,
    #[command(flatten)]
    limits: LimitsConfig,
    #[command(flatten)]
    nats: NatsConfig,
    #[command(flatten)]
    common: CommonConfig,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    init_tracing(args.common.log_format);
    if let Err(error) = run(args).await {
        eprintln!("bot-worker: {error:#}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let url = args.common.nats_url.as_deref().context("NATS_URL is required")?;
    let bus: Arc<dyn chat_shared::bus::Bus> = NatsBus::connect(url, &args.nats)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let stop = CancellationToken::new();
    let ops = OpsState {
        bus: bus.clone(),
        registry: Arc::new(prometheus_client::registry::Registry::default()),
        stopping: Default::default(),
    };
    let stopping = ops.stopping.clone();
    let ops_server = tokio::spawn(chat_shared::ops::serve(args.listen_addr, ops, stop.clone()));
    let config = BotConfig {
        concurrency: args.bot_concurrency as usize,
        job_timeout: Duration::from_millis(args.bot_job_timeout_ms),
        retry_base: Duration::from_millis(args.bot_retry_base_ms),
        max_reply_chars: args.limits.max_text_chars as usize,
    };
    let worker = tokio::spawn(bot_worker::run(bus, Arc::new(CommandBot), config, stop.clone()));
    println!("bot-worker taking jobs (ops on {})", args.listen_addr);
    shutdown_signal().await;
    stopping.store(true, Ordering::Relaxed);
    stop.cancel();
    worker.await.context("bot task")?.context("bot worker")?;
    ops_server.await.context("ops task")?.context("ops server")?;
    Ok(())
}
