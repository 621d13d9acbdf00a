//! Open-loop senders. Each sender has a fixed schedule (one message every `interval`,
//! staggered against the other senders) and sends each message at its scheduled time, or at
//! once when it is behind: latency is measured from the scheduled time, so a server that
//! pushes back shows up as latency instead of a silently lower rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use chat_shared::protocol::codec::Encoding;
use chat_shared::protocol::{ClientFrame, SendFrame};
use futures::{Sink, SinkExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use crate::clock::instant_at;
use crate::delivery::{DeliveryBook, describe_ws_error};
use crate::probe;
use crate::wire::encode_client;

/// When and where one sender sends.
#[derive(Debug, Clone)]
pub struct SenderPlan {
    /// Scheduled time of the first message (ns since the clock's epoch).
    pub first_ns: u64,
    pub interval_ns: u64,
    /// No message is scheduled at or after this.
    pub end_ns: u64,
    /// Guild indices, used round-robin.
    pub guilds: Vec<usize>,
    pub message_bytes: usize,
}

impl SenderPlan {
    /// Plans for `senders` senders sharing `rate` messages/s between `start_ns` and `end_ns`.
    /// `guilds_of(j)` are the guilds sender `j` may post to.
    pub fn spread(
        senders: usize,
        rate: f64,
        start_ns: u64,
        end_ns: u64,
        message_bytes: usize,
        guilds_of: impl Fn(usize) -> Vec<usize>,
    ) -> Vec<SenderPlan> {
        let interval = Duration::from_secs_f64(senders as f64 / rate);
        let interval_ns = u64::try_from(interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        (0..senders)
            .map(|j| SenderPlan {
                first_ns: start_ns + interval_ns * j as u64 / senders as u64,
                interval_ns,
                end_ns,
                guilds: guilds_of(j),
                message_bytes,
            })
            .collect()
    }
}

/// Shared by all senders of a run: the next global message number.
#[derive(Debug, Default)]
pub struct MessageCounter(AtomicU64);

impl MessageCounter {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Relaxed)
    }
}

/// Sends on `sink` following `plan` until the plan ends, `stop` fires or the socket fails.
pub async fn run_sender<S>(
    mut sink: S,
    plan: SenderPlan,
    book: Arc<DeliveryBook>,
    counter: Arc<MessageCounter>,
    encoding: Encoding,
    stop: CancellationToken,
) where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let nonce = book.membership.nonce().to_owned();
    for k in 0u64.. {
        let scheduled = plan
            .first_ns
            .saturating_add(plan.interval_ns.saturating_mul(k));
        if scheduled >= plan.end_ns || plan.guilds.is_empty() {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(instant_at(scheduled).into()) => {}
        }
        let guild = plan.guilds[usize::try_from(k).unwrap_or(0) % plan.guilds.len()];
        let number = counter.next();
        let measured = book.window.contains(scheduled);
        let frame = ClientFrame::Send(SendFrame {
            reference: Some(probe::reference(number, guild, measured)),
            guild_id: Some(book.membership.guild_id(guild).to_owned()),
            text: Some(probe::text(scheduled, plan.message_bytes)),
            admin_only: None,
            request_bot: None,
            message_id: Some(probe::message_id(&nonce, number)),
        });
        let message = match encode_client(&frame, encoding) {
            Ok(message) => message,
            Err(reason) => {
                book.disconnects
                    .add(format!("sender cannot encode: {reason}"));
                break;
            }
        };
        book.note_sent(guild, measured);
        if let Err(e) = sink.send(message).await {
            book.forget_sent(guild, measured);
            book.disconnects
                .add(format!("sender stopped: {}", describe_ws_error(&e)));
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_share_the_rate_and_stagger() {
        let plans = SenderPlan::spread(4, 100.0, 1_000, 2_000_000_000, 100, |j| vec![j]);
        assert_eq!(plans.len(), 4);
        assert!(plans.iter().all(|p| p.interval_ns == 40_000_000));
        assert_eq!(plans[1].first_ns - plans[0].first_ns, 10_000_000);
        assert_eq!(plans[3].guilds, vec![3]);
    }
}
