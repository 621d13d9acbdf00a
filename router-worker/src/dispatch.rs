//! Ordering: every guild gets its own queue and task, so the sends of one guild are appended in
//! the order they arrived while different guilds proceed in parallel. A guild's task ends after
//! a quiet spell and is made again on the next send. A full guild queue refuses its own sends
//! (`rate_limited`) instead of holding up the ingress, and a send whose submitter has stopped
//! waiting (it answered `server_error`) is dropped before it is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::{Bus, BusError, IngressItem};
use chat_shared::protocol::ErrorCode;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::RouterMetrics;
use crate::route::{RouterConfig, route};

/// Sends waiting per guild; beyond that the guild's new sends are refused `rate_limited`.
const GUILD_QUEUE: usize = 256;
/// A guild's task ends after this long without sends.
const GUILD_IDLE: Duration = Duration::from_secs(30);

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

/// Decides a guild's sends one after another until it has been quiet for [`GUILD_IDLE`].
async fn guild_task(
    bus: Arc<dyn Bus>,
    config: RouterConfig,
    metrics: Arc<RouterMetrics>,
    mut queue: mpsc::Receiver<IngressItem>,
) {
    loop {
        let item = match tokio::time::timeout(GUILD_IDLE, queue.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => return,
            Err(_) => {
                queue.close();
                while let Ok(item) = queue.try_recv() {
                    handle(bus.as_ref(), &config, &metrics, item).await;
                }
                return;
            }
        };
        handle(bus.as_ref(), &config, &metrics, item).await;
    }
}

async fn handle(bus: &dyn Bus, config: &RouterConfig, metrics: &RouterMetrics, item: IngressItem) {
    let started = std::time::Instant::now();
    if item.expired() {
        tracing::debug!(user = %item.request.sender.id, "dropping a send its submitter gave up on");
        item.reply.reply(Err(ErrorCode::ServerError)).await;
        metrics.record("expired", 0.0);
        return;
    }
    let span = tracing::info_span!(
        "router.route",
        user = %item.request.sender.id,
        message_id = tracing::field::Empty,
        seq = tracing::field::Empty,
    );
    item.trace.set_parent_of(&span);
    async move {
        let outcome = route(bus, config, item.request).await;
        match &outcome {
            Ok(ack) => {
                tracing::Span::current().record("message_id", ack.message_id.as_str());
                tracing::Span::current().record("seq", ack.seq);
                tracing::debug!("acked");
            }
            Err(code) => tracing::debug!(%code, "refused"),
        }
        let label = match &outcome {
            Ok(_) => "ack",
            Err(code) => code.as_str(),
        };
        item.reply.reply(outcome).await;
        metrics.record(label, started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await
}
