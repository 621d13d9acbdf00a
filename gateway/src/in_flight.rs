//! One connection's sends on their way to the router, for every transport that keeps them in
//! order (`/ws`, Socket.IO): each is handed over in its [`Turn`] — after the connection's
//! previous send has its place in the bus's order, not after its answer — and their answers
//! come back in the order they were sent ([`InFlight`]), at most [`MAX_SENDS_IN_FLIGHT`] at
//! once (the transport stops reading beyond).

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio::sync::oneshot;

/// Sends of one connection waiting for the router at once; reading its next frames pauses
/// beyond it.
pub const MAX_SENDS_IN_FLIGHT: usize = 64;

/// The order in which a connection hands its sends over.
#[derive(Debug, Default)]
pub struct SendOrder {
    /// Resolves once the last send's turn is over.
    last: Option<oneshot::Receiver<()>>,
}

impl SendOrder {
    /// The next send's turn (it follows every turn taken before).
    pub fn turn(&mut self) -> Turn {
        let (over, next_waits) = oneshot::channel();
        Turn {
            previous: self.last.replace(next_waits),
            _over: over,
        }
    }
}

/// One send's turn: it begins when the send before it has been handed over and ends when this
/// one is dropped (right after its own hand-over).
#[derive(Debug)]
pub struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped with the turn, which lets the next one begin.
    _over: oneshot::Sender<()>,
}

impl Turn {
    /// Waits for the turn to begin.
    pub async fn begin(&mut self) {
        if let Some(previous) = self.previous.as_mut() {
            // A sender dropped (turn over) reads as an error: either way it is over.
            let _ = previous.await;
            self.previous = None;
        }
    }
}

/// A connection's sends waiting for their answers, answered in the order they were sent
/// (boxed and dropped once empty: an idle connection keeps a null pointer).
pub struct InFlight<T>(Option<Box<FuturesOrdered<BoxFuture<'static, T>>>>);

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight(None)
    }
}

impl<T> InFlight<T> {
    pub fn push(&mut self, send: BoxFuture<'static, T>) {
        self.0.get_or_insert_default().push_back(send);
    }

    /// Whether another send may be read ([`MAX_SENDS_IN_FLIGHT`]).
    pub fn has_room(&self) -> bool {
        self.0.as_ref().map_or(0, |sends| sends.len()) < MAX_SENDS_IN_FLIGHT
    }

    /// The oldest send's answer, once it has come (pending while none is in flight).
    pub async fn next(&mut self) -> T {
        let answer = match self.0.as_mut() {
            Some(sends) => sends.next().await,
            None => None,
        };
        if self.0.as_ref().is_some_and(|sends| sends.is_empty()) {
            self.0 = None;
        }
        match answer {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn answers_come_in_send_order_and_turns_follow_each_other() {
        let mut order = SendOrder::default();
        let mut first = order.turn();
        let mut second = order.turn();
        first.begin().await;
        assert!(
            Box::pin(second.begin()).as_mut().now_or_never().is_none(),
            "the second turn waits for the first"
        );
        drop(first);
        second.begin().await;

        let mut in_flight = InFlight::default();
        let (slow_tx, slow_rx) = oneshot::channel::<u32>();
        in_flight.push(async move { slow_rx.await.unwrap_or(0) }.boxed());
        in_flight.push(async { 2 }.boxed());
        assert!(
            Box::pin(in_flight.next()).as_mut().now_or_never().is_none(),
            "the second answer waits behind the first"
        );
        let _ = slow_tx.send(1);
        assert_eq!(in_flight.next().await, 1);
        assert_eq!(in_flight.next().await, 2);
        assert!(in_flight.0.is_none(), "given back once empty");
        for _ in 0..MAX_SENDS_IN_FLIGHT {
            assert!(in_flight.has_room());
            in_flight.push(std::future::pending().boxed());
        }
        assert!(!in_flight.has_room());
    }
}
