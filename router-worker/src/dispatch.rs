//! Ordering: every guild gets its own queue and task ([`crate::guild`]), so the sends of one
//! guild are appended in the order they arrived while different guilds proceed in parallel. A full guild queue refuses its own sends
//! (`rate_limited`) instead of holding up the ingress, and a send whose submitter has stopped
//! waiting (it answered `server_error`) is dropped before it is stored.

use std::collections::HashMap;
use std::sync::Arc;

use chat_shared::bus::{Bus, BusError, IngressItem};
use chat_shared::protocol::ErrorCode;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::guild::guild_task;
use crate::metrics::RouterMetrics;
use crate::route::RouterConfig;

/// Sends waiting per guild (besides the [`crate::guild::IN_FLIGHT`] being decided); beyond
/// that the guild's new sends are refused `rate_limited`.
const GUILD_QUEUE: usize = 256;

/// Serves the ingress until `shutdown` fires, then finishes the sends already taken.
pub async fn run(
    bus: Arc<dyn Bus>,
    config: RouterConfig,
    metrics: Arc<RouterMetrics>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut ingress = bus.ingress().await?;
    let mut guilds: HashMap<String, mpsc::Sender<IngressItem>> = HashMap::new();
    let mut tasks = JoinSet::new();
    tracing::info!("router worker serving the ingress");
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => break,
            item = ingress.next() => match item {
                Some(item) => item,
                None => break,
            },
        };
        let key = item.request.guild_id.clone().unwrap_or_default();
        let item = match guilds.get(&key) {
            Some(queue) => match queue.try_send(item) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    refuse_busy(&metrics, back);
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(back)) => back,
            },
            None => item,
        };
        let (tx, rx) = mpsc::channel(GUILD_QUEUE);
        let _ = tx.try_send(item);
        guilds.insert(key.clone(), tx);
        tasks.spawn(
            guild_task(bus.clone(), config, metrics.clone(), rx)
                .instrument(tracing::info_span!("guild", guild = %key)),
        );
        while tasks.try_join_next().is_some() {}
        guilds.retain(|_, q| !q.is_closed());
    }
    drop(guilds);
    tracing::info!(guilds = tasks.len(), "router worker draining");
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// A guild whose queue is full answers its own sender `rate_limited` at once, so the ingress
/// loop never waits for one guild while the others' sends pile up behind it.
fn refuse_busy(metrics: &Arc<RouterMetrics>, item: IngressItem) {
    let metrics = metrics.clone();
    tokio::spawn(async move {
        item.reply.reply(Err(ErrorCode::RateLimited)).await;
        metrics.record("guild_busy", 0.0);
    });
}
