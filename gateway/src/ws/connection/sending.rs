//! A connection's `send` frames: flood control (the per-connection rate, then 4008 after
//! [`FLOOD_STRIKES`] refusals in a row), the user's send limits, then the one send path —
//! handed to the router one after another so one client's messages keep their order, each
//! handed over as soon as the one before it has its place (not its answer): the router
//! round trips of one connection overlap ([`crate::in_flight`]).

use chat_shared::protocol::{Ack, ErrorCode, ErrorFrame, SendFrame, ServerFrame, close_code};
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::Reader;
use crate::in_flight::InFlight;
use crate::send::{SendFields, answered, hand_over};

/// Rate-limited sends in a row that count as flooding (closed with 4008).
const FLOOD_STRIKES: u32 = 100;

/// A connection's sends waiting for the router, answered in order.
pub(super) type Sends = InFlight<ServerFrame>;

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
        let mut turn = self.send_order.turn();
        Some(
            async move {
                turn.begin().await;
                let answer = hand_over(&state, &caller, fields).await;
                drop(turn);
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
