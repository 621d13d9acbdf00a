//! The `router-worker` binary: one router of a distributed deployment, sharing the ingress
//! with any number of others over NATS. SIGTERM stops taking sends and finishes those taken.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use chat_shared::bus::InstrumentedBus;
use chat_shared::bus::nats::connection_events;
use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::config::{CommonConfig, LimitsConfig};
use chat_shared::ops::Telemetry;
use chat_shared::ops::run_worker;
use chat_shared::telemetry::ROUTER_SERVICE;
use clap::Parser;
use router_worker::{RouterConfig, RouterMetrics};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc, as in the gateway (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Validates, orders and stores chat messages (distributed mode; needs NATS_URL).
#[derive(Debug, Parser)]
#[command(name = "router-worker", version, about)]
struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:9091")]
    listen_addr: SocketAddr,
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
    let telemetry = match Telemetry::start(&args.common, ROUTER_SERVICE) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("router-worker: {error}");
            std::process::exit(2);
        }
    };
    let result = run(args).await;
    telemetry.finish().await;
    if let Err(error) = result {
        eprintln!("router-worker: {error:#}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let url = args
        .common
        .nats_url
        .as_deref()
        .context("NATS_URL is required")?;
    let bus: Arc<dyn chat_shared::bus::Bus> = NatsBus::connect(url, &args.nats)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let stop = CancellationToken::new();
    let mut registry = prometheus_client::registry::Registry::default();
    let bus = InstrumentedBus::wrap(bus, &mut registry);
    connection_events::register(&mut registry);
    let metrics = Arc::new(RouterMetrics::registered(&mut registry));
    let config = RouterConfig {
        max_text_chars: args.limits.max_text_chars as usize,
    };
    let work = router_worker::run(bus.clone(), config, metrics, stop.clone());
    let ops = tokio::net::TcpListener::bind(args.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen_addr))?;
    // The address it got (LISTEN_ADDR may name port 0): test harnesses read it from here.
    println!("router-worker serving (ops on {})", ops.local_addr()?);
    run_worker(ops, bus, registry, stop, work).await?;
    Ok(())
}
