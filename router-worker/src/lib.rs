//! The router worker as a library: it takes sends from the bus's ingress, decides them
//! ([`route`]), and answers each exactly once. Embedded mode runs it in the gateway's process;
//! distributed mode runs any number of `router-worker` processes sharing the ingress.

mod route;

pub use route::{RouterConfig, route};

use std::sync::Arc;

use chat_shared::bus::{Bus, BusError, IngressItem};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How many sends one router decides at the same time.
const MAX_IN_FLIGHT: usize = 1024;

/// Serves the ingress until `shutdown` fires, then finishes the sends already taken.
pub async fn run(
    bus: Arc<dyn Bus>,
    config: RouterConfig,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut ingress = bus.ingress().await?;
    let mut in_flight = JoinSet::new();
    tracing::info!("router worker serving the ingress");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = in_flight.join_next(), if in_flight.len() >= MAX_IN_FLIGHT => {}
            item = ingress.next(), if in_flight.len() < MAX_IN_FLIGHT => match item {
                Some(item) => {
                    in_flight.spawn(handle(bus.clone(), config, item));
                }
                None => break,
            },
        }
        while in_flight.try_join_next().is_some() {}
    }
    tracing::info!(pending = in_flight.len(), "router worker draining");
    while in_flight.join_next().await.is_some() {}
    Ok(())
}

async fn handle(bus: Arc<dyn Bus>, config: RouterConfig, item: IngressItem) {
    let span = tracing::info_span!(
        "route",
        user = %item.request.sender.id,
        guild = item.request.guild_id.as_deref().unwrap_or(""),
        message_id = tracing::field::Empty,
        seq = tracing::field::Empty,
    );
    async move {
        let outcome = route(bus.as_ref(), &config, item.request).await;
        match &outcome {
            Ok(ack) => {
                tracing::Span::current().record("message_id", ack.message_id.as_str());
                tracing::Span::current().record("seq", ack.seq);
                tracing::debug!("acked");
            }
            Err(code) => tracing::debug!(%code, "refused"),
        }
        item.reply.reply(outcome).await;
    }
    .instrument(span)
    .await
}
