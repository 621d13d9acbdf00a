//! The `gateway` binary: embedded mode with no NATS_URL/REDIS_URL, one gateway of a
//! distributed deployment otherwise. SIGTERM/Ctrl-C drains before exiting.

use std::time::Duration;

use anyhow::{Context, bail};
use chat_shared::config::random_secret;
use chat_shared::ops::Telemetry;
use chat_shared::telemetry::GATEWAY_SERVICE;
use clap::Parser;
use gateway::{Deps, GatewayConfig, Node};

/// mimalloc instead of glibc's malloc: an idle connection's memory is given back after the
/// handshake's transient allocations (glibc kept them as fragmented arenas), and the many
/// small allocations of the fan-out are cheaper (docs/benchmarks.md, session 15).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let config = GatewayConfig::parse();
    let telemetry = match Telemetry::start(&config.common, GATEWAY_SERVICE) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("gateway: {error}");
            std::process::exit(2);
        }
    };
    let result = run(config).await;
    telemetry.finish().await;
    if let Err(error) = result {
        eprintln!("gateway: {error:#}");
        std::process::exit(2);
    }
}

async fn run(config: GatewayConfig) -> anyhow::Result<()> {
    config.check().map_err(anyhow::Error::msg)?;
    if config.dev_login_enabled() {
        tracing::warn!(
            "DEV LOGIN IS ON: anyone who can reach POST /api/dev/login can sign in as any user \
             with any role (set DEV_LOGIN=false, or configure JWT_SECRET without DEV_LOGIN)"
        );
    }
    let deps = deps(&config).await?;
    let embedded = deps.in_process_workers;
    let node = Node::start(config.clone(), deps).await.with_context(|| {
        format!(
            "cannot listen on {} (or the ops address {})",
            config.listen_addr,
            config
                .ops_listen_addr
                .unwrap_or(gateway::ops_listener::DEFAULT_OPS_ADDR)
        )
    })?;
    announce(&node, embedded);
    chat_shared::ops::shutdown_signal().await;
    node.drain(
        Duration::from_millis(config.shutdown_readiness_delay_ms),
        Duration::from_millis(config.shutdown_close_window_ms),
    )
    .await;
    node.shutdown().await;
    tracing::info!("gateway stopped");
    Ok(())
}

async fn deps(config: &GatewayConfig) -> anyhow::Result<Deps> {
    if config.embedded() {
        let generated =
            config.auth.jwt_secret.is_none() && config.auth.jwt_public_key_file.is_none();
        let secret = generated.then(random_secret);
        let verifier = config.auth.verifier(secret.as_deref())?;
        if generated {
            tracing::info!(
                "no JWT_SECRET set: generated one for this run (tokens end with the process)"
            );
        }
        return Ok(Node::embedded_deps(verifier));
    }
    let (Some(nats_url), Some(redis_url)) = (&config.common.nats_url, &config.common.redis_url)
    else {
        bail!("distributed mode needs both NATS_URL and REDIS_URL (embedded mode: set neither)");
    };
    Ok(gateway::distributed::deps(config, &config.nats, nats_url, redis_url).await?)
}

fn announce(node: &Node, embedded: bool) {
    let addr = node.addr;
    let shown = if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    };
    if embedded {
        println!("guild chat (embedded mode) at {shown}");
        println!(
            "open it in a browser and sign in with the dev-login form (any name, role and guilds)"
        );
    } else {
        println!("gateway listening on {shown}");
    }
    println!(
        "ops endpoints (/metrics, /healthz, /readyz) on http://{}",
        node.ops_addr
    );
}
