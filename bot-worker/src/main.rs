//! The `bot-worker` binary: one bot worker of a distributed deployment, sharing the durable
//! job queue with any number of others over NATS, and the cost guard's counters through Redis.
//! SIGTERM stops taking jobs and finishes those taken.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bot_worker::{BotArgs, BotMetrics};
use chat_shared::bus::InstrumentedBus;
use chat_shared::bus::nats::connection_events;
use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::config::{CommonConfig, LimitsConfig};
use chat_shared::ops::Telemetry;
use chat_shared::ops::run_worker;
use chat_shared::store::rate_limit::{MemoryRateLimiter, RateLimiter, RedisRateLimiter};
use chat_shared::telemetry::BOT_SERVICE;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc, as in the gateway (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers bot requests from the durable queue (distributed mode; needs NATS_URL, and
/// REDIS_URL for rate limits shared by all workers).
#[derive(Debug, Parser)]
#[command(name = "bot-worker", version, about)]
struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:9092")]
    listen_addr: SocketAddr,
    #[command(flatten)]
    bot: BotArgs,
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
    let telemetry = match Telemetry::start(&args.common, BOT_SERVICE) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("bot-worker: {error}");
            std::process::exit(2);
        }
    };
    let result = run(args).await;
    telemetry.finish().await;
    if let Err(error) = result {
        eprintln!("bot-worker: {error:#}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let url = args
        .common
        .nats_url
        .as_deref()
        .context("NATS_URL is required")?;
    let limiter = rate_limiter(args.common.redis_url.as_deref()).await?;
    let bus: Arc<dyn chat_shared::bus::Bus> =
        NatsBus::connect_as(url, &args.nats, chat_shared::bus::nats::StreamRole::Verify)
            .await
            .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let mut registry = prometheus_client::registry::Registry::default();
    let bus = InstrumentedBus::wrap(bus, &mut registry);
    connection_events::register(&mut registry);
    let backend = args.bot.backend(bus.clone())?;
    backend.register_metrics(&mut registry);
    let stop = CancellationToken::new();
    let mut config = args
        .bot
        .config(limiter, args.limits.max_text_chars as usize);
    config.metrics = Arc::new(BotMetrics::registered(&mut registry));
    tracing::info!(backend = %args.bot.describe(), "bot backend");
    if args.bot.bot_job_timeout_ms >= args.nats.bot_ack_wait_secs.saturating_mul(1000) {
        tracing::warn!(
            "BOT_JOB_TIMEOUT_MS is not below BOT_ACK_WAIT_SECS: a slow answer will be redelivered \
             and asked for again while it is still running (one reply shows, but the model is paid twice)"
        );
    }
    let work = bot_worker::run(bus.clone(), backend, config, stop.clone());
    let ops = tokio::net::TcpListener::bind(args.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen_addr))?;
    // The address it got (LISTEN_ADDR may name port 0): test harnesses read it from here.
    println!("bot-worker taking jobs (ops on {})", ops.local_addr()?);
    run_worker(ops, bus, registry, stop, work).await?;
    Ok(())
}

/// Redis counters shared by every worker, or this worker's memory when REDIS_URL is unset.
async fn rate_limiter(redis_url: Option<&str>) -> anyhow::Result<Arc<dyn RateLimiter>> {
    let Some(url) = redis_url.map(str::trim).filter(|u| !u.is_empty()) else {
        tracing::warn!("REDIS_URL is unset: bot rate limits are counted per worker, not shared");
        return Ok(Arc::new(MemoryRateLimiter::new()));
    };
    let limiter = RedisRateLimiter::connect(url)
        .await
        .with_context(|| "cannot connect to Redis for the bot rate limits".to_owned())?;
    Ok(Arc::new(limiter))
}
