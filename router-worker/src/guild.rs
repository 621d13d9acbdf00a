//! One guild's sends, pipelined: started in arrival order, up to [`IN_FLIGHT`] at once (their
//! claim reads overlap; their log publishes take turns in the bus, in the order they were
//! started), and finished — delivered, then answered — in that same order, so deliveries leave
//! in seq order. A guild's task ends after a quiet spell and is made again on the next send.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use chat_shared::bus::{Bus, IngressItem, IngressReply};
use chat_shared::protocol::ErrorCode;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::mpsc;
use tracing::{Instrument, Span};

use crate::metrics::RouterMetrics;
use crate::route::{Decided, RouterConfig, decide, finish};

/// Sends of one guild between being taken and being answered.
pub const IN_FLIGHT: usize = 64;
/// A guild's task ends after this long without sends.
const GUILD_IDLE: Duration = Duration::from_secs(30);

/// A send whose append is done (or that was refused before it).
struct Landed {
    decided: Decided,
    reply: Box<dyn IngressReply>,
    span: Span,
    started: Instant,
    /// Set for a send dropped before it was decided.
    label: Option<&'static str>,
}

type Flight = Pin<Box<dyn Future<Output = Landed> + Send>>;

/// Decides a guild's sends until it has been quiet for [`GUILD_IDLE`] (or its queue closes).
pub async fn guild_task(
    bus: Arc<dyn Bus>,
    config: RouterConfig,
    metrics: Arc<RouterMetrics>,
    mut queue: mpsc::Receiver<IngressItem>,
) {
    let mut flights: FuturesOrdered<Flight> = FuturesOrdered::new();
    let mut open = true;
    while open || !flights.is_empty() {
        tokio::select! {
            biased;
            Some(landed) = flights.next(), if !flights.is_empty() => {
                land(bus.as_ref(), &metrics, landed).await;
            }
            received = tokio::time::timeout(GUILD_IDLE, queue.recv()),
                if open && flights.len() < IN_FLIGHT => match received {
                Ok(Some(item)) => {
                    let mut flight = take_off(bus.clone(), config, item);
                    // The first poll runs up to the append's first await, where it takes its
                    // place in the guild's order: now, in arrival order.
                    let flight = match futures::poll!(flight.as_mut()) {
                        Poll::Ready(landed) => Box::pin(std::future::ready(landed)),
                        Poll::Pending => flight,
                    };
                    flights.push_back(flight);
                }
                Ok(None) => open = false,
                // Quiet: take what is still queued, then end.
                Err(_) if flights.is_empty() => queue.close(),
                Err(_) => {}
            }
        }
    }
}

/// Starts one send: validation and the append.
fn take_off(bus: Arc<dyn Bus>, config: RouterConfig, item: IngressItem) -> Flight {
    let started = Instant::now();
    let span = tracing::info_span!(
        "router.route",
        user = %item.request.sender.id,
        message_id = tracing::field::Empty,
        seq = tracing::field::Empty,
    );
    item.trace.set_parent_of(&span);
    let expired = item.expired();
    let IngressItem { request, reply, .. } = item;
    if expired {
        tracing::debug!(user = %request.sender.id, "dropping a send its submitter gave up on");
        return Box::pin(std::future::ready(Landed {
            decided: Decided::Answer(Err(ErrorCode::ServerError)),
            reply,
            span,
            started,
            label: Some("expired"),
        }));
    }
    let decide_span = span.clone();
    Box::pin(async move {
        let decided = decide(bus.as_ref(), &config, request)
            .instrument(decide_span)
            .await;
        Landed {
            decided,
            reply,
            span,
            started,
            label: None,
        }
    })
}

/// Delivers (when stored) and answers one send, in the guild's order.
async fn land(bus: &dyn Bus, metrics: &RouterMetrics, landed: Landed) {
    let Landed {
        decided,
        reply,
        span,
        started,
        label,
    } = landed;
    async move {
        let outcome = finish(bus, decided).await;
        match &outcome {
            Ok(ack) => {
                Span::current().record("message_id", ack.message_id.as_str());
                Span::current().record("seq", ack.seq);
                tracing::debug!("acked");
            }
            Err(code) => tracing::debug!(%code, "refused"),
        }
        let label = label.unwrap_or(match &outcome {
            Ok(_) => "ack",
            Err(code) => code.as_str(),
        });
        reply.reply(outcome).await;
        metrics.record(label, started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await
}
