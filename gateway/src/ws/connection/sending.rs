//! A connection's `send` frames: flood control (the per-connection rate, then 4008 after
//! [`FLOOD_STRIKES`] refusals in a row), the user's send limits, then the one send path —
//! handed to the router one after another so one client's messages keep their order, each
//! handed over as soon as the one before it has its place (not its answer): the router
//! round trips of one connection overlap, up to `MAX_SENDS_IN_FLIGHT`.

use chat_shared::protocol::{Ack, ErrorCode, ErrorFrame, SendFrame, ServerFrame, close_code};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::Reader;
use crate::send::{SendFields, answered, hand_over};

/// Rate-limited sends in a row that count as flooding (closed with 4008).
const FLOOD_STRIKES: u32 = 100;

/// A connection's sends waiting for the router, answered in order (boxed: the connection's
/// task keeps a pointer, not the set, between sends).
pub(super) type Sends = Box<FuturesOrdered<BoxFuture<'static, ServerFrame>>>;

/// The next answered send (pending while there is none).
pub(super) async fn next_answer(sends: &mut Option<Sends>) -> Option<ServerFrame> {
    match sends {
        Some(sends) if !sends.is_empty() => sends.next().await,
        _ => std::future::pending().await,
    }
}

/// Sends waiting for the router.
pub(super) fn in_flight(sends: &Option<Sends>) -> usize {
    sends.as_ref().map_or(0, |sends| sends.len())
}

impl Reader {
    /// Flood control, then the send path after this connection's previous send; `None` when
    /// answered at once.
    pub(super) async fn on_send(
        &mut self,
        frame: SendFrame,
    ) -> Option<BoxFuture<'static, ServerFrame>> {
        let reference = frame.reference.clone();
        if self.limiter().check().is_err() {
            self.strikes += 1;
            if self.strikes >= FLOOD_STRIKES {
                self.handle.close(close_code::POLICY_VIOLATION, "flooding");
            }
            let _ = answered(&self.state.metrics, Err(ErrorCode::RateLimited));
            let refusal = ErrorFrame::new(ErrorCode::RateLimited, reference);
            self.reply(ServerFrame::Error(refusal));
            return None;
        }
        self.strikes = 0;
        if let Err(refusal) = crate::send_limit::check(
            &self.state,
            &self.caller.user.id,
            frame.request_bot == Some(true),
        )
        .await
        {
            self.reply(refusal.frame(reference));
            return None;
        }
        let fields = SendFields::from_frame(frame, None);
        let (state, caller) = (self.state.clone(), self.caller.clone());
        let (queued, this_queued) = oneshot::channel::<()>();
        let previous = self.last_send_queued.replace(this_queued);
        Some(
            async move {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                let answer = hand_over(&state, &caller, fields).await;
                let _ = queued.send(());
                match answer.await {
                    Ok(ack) => ServerFrame::Ack(Ack {
                        reference,
                        message_id: ack.message_id,
                        seq: ack.seq,
                    }),
                    Err(code) => ServerFrame::Error(ErrorFrame::new(code, reference)),
                }
            }
            // Under the frame's `ws.receive` span, so the router's trace hangs off it.
            .instrument(tracing::Span::current())
            .boxed(),
        )
    }
}
