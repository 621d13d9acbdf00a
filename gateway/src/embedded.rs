//! Embedded mode: the router and bot workers run in the gateway's process over the in-memory
//! bus, so one command serves the whole chat; their metrics are served with the gateway's.

use std::sync::Arc;

use bot_worker::{BotArgs, BotMetrics, SetupError};
use chat_shared::bus::Bus;
use router_worker::{RouterConfig, RouterMetrics};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Starts one router and one bot worker on `bus`, their metrics registered in `metrics`; they
/// stop with `stop`.
pub fn spawn_workers(
    bus: Arc<dyn Bus>,
    bot: &BotArgs,
    max_text_chars: usize,
    metrics: &Metrics,
    stop: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, SetupError> {
    let (backend, mut config) = bot.embedded(bus.clone(), max_text_chars)?;
    config.metrics = Arc::new(metrics.register_with(BotMetrics::registered));
    metrics.register_with(|registry| backend.register_metrics(registry));
    let router_metrics = Arc::new(metrics.register_with(RouterMetrics::registered));
    let router = {
        let (bus, stop) = (bus.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(error) =
                router_worker::run(bus, RouterConfig { max_text_chars }, router_metrics, stop).await
            {
                tracing::error!(%error, "embedded router stopped");
            }
        })
    };
    let bot = tokio::spawn(async move {
        if let Err(error) = bot_worker::run(bus, backend, config, stop).await {
            tracing::error!(%error, "embedded bot worker stopped");
        }
    });
    Ok(vec![router, bot])
}
