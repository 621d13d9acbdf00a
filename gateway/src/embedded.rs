//! Embedded mode: the router and bot workers run in the gateway's process over the in-memory
//! bus, so one command serves the whole chat.

use std::sync::Arc;

use bot_worker::{BotArgs, SetupError};
use chat_shared::bus::Bus;
use router_worker::RouterConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts one router and one bot worker on `bus`; they stop with `stop`.
pub fn spawn_workers(
    bus: Arc<dyn Bus>,
    bot: &BotArgs,
    max_text_chars: usize,
    stop: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, SetupError> {
    let (backend, config) = bot.embedded(bus.clone(), max_text_chars)?;
    let router = {
        let (bus, stop) = (bus.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(error) = router_worker::run(
                bus,
                RouterConfig { max_text_chars },
                Default::default(),
                stop,
            )
            .await
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
