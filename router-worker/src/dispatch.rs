//! Ordering: every guild gets its own queue and task ([`crate::guild`]), so the sends of one
//! guild are appended in the order they arrived while different guilds proceed in parallel. A full guild queue refuses its own sends
//! (`rate_limited`) instead of holding up the ingress, and a send whose submitter has stopped
//! waiting (it answered `server_error`) is dropped before it is stored.

use std::collections::HashMap;
use std::sync::Arc;

use chat_shared::bus::{BoxStream, Bus, BusError, IngressItem};
use chat_shared::protocol::ErrorCode;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::guild::guild_task;
use crate::metrics::RouterMetrics;
use crate::route::RouterConfig;

/// Sends waiting per guild (besides the [`crate::guild::IN_FLIGHT`] batches being decided); beyond
/// that the guild's new sends are refused `rate_limited`. Room for 16 connections that each
/// keep their most sends in flight (the gateway's 64 per connection).
const GUILD_QUEUE: usize = 1024;

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
    let mut stopping = false;
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled(), if !stopping => {
                // Hand the partitions over first, then answer what was already taken.
                stopping = true;
                bus.release_ingress().await;
                tracing::info!("router worker gave its ingress back; answering what it took");
                continue;
            }
            item = next_item(&mut ingress, stopping) => match item {
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
    // The answers are queued on the bus connection; one round trip on it after them means
    // they were written before the process exits (otherwise the last ones can be lost and
    // their senders time out).
    if let Err(error) = bus.ping().await {
        tracing::warn!(%error, "could not confirm the last answers left");
    }
    Ok(())
}

/// The next send; while stopping, `None` once the stream ends or stays quiet for
/// [`STOP_QUIET`] (an in-process ingress never ends).
async fn next_item(ingress: &mut BoxStream<IngressItem>, stopping: bool) -> Option<IngressItem> {
    if stopping {
        tokio::time::timeout(STOP_QUIET, ingress.next())
            .await
            .ok()
            .flatten()
    } else {
        ingress.next().await
    }
}

/// While stopping, how long the ingress may stay quiet before the router stops reading it.
const STOP_QUIET: std::time::Duration = std::time::Duration::from_millis(200);

/// A guild whose queue is full answers its own sender `rate_limited` at once, so the ingress
/// loop never waits for one guild while the others' sends pile up behind it.
fn refuse_busy(metrics: &Arc<RouterMetrics>, item: IngressItem) {
    let metrics = metrics.clone();
    tokio::spawn(async move {
        item.reply.reply(Err(ErrorCode::RateLimited)).await;
        metrics.record("guild_busy", 0.0);
    });
}
