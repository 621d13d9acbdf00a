//! The WebSocket writing side of one connection, plain I/O, run inside the connection's one
//! task ([`crate::ws::connection`]): it takes outbound items (the queue's, and the
//! connection's own replies), hands each to the connection's [`Outbox`] (ordering lives
//! there), encodes what comes back as WebSocket data frames, feeds them all to the socket and
//! flushes once ([`crate::websocket::WebSocket`] writes them from their shared bytes). On each
//! heartbeat it sends a ping, or closes an idle connection or an expired token. It closes with
//! 4009 a peer whose socket takes no bytes for `WRITE_TIMEOUT_MS` (however long a peer that
//! keeps reading takes), and sends the close frame with the contract's code. Each frame
//! written is counted by type, and a live message's time since its log append is recorded.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::auth::{EXP_LEEWAY_SECS, unix_now};
use chat_shared::protocol::close_code;
use chat_shared::protocol::codec::Encoding;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;

use crate::metrics::{FrameType, Metrics};
use crate::outbound::{Outbound, Outbox, Write};
use crate::websocket::{Data, Stalled, WebSocket};
use crate::wire_entry::control_frame;
use crate::ws::handle::{ConnHandle, Outgoing};

/// Queue items fed before one flush.
const BATCH: usize = 64;
/// Longest wait for the close frame to go out (a slow reader that reads again within it
/// learns why it was closed).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the writer paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub heartbeat: Duration,
    /// Longest a flush may wait for the peer to take any bytes.
    pub write_timeout: Duration,
}

/// How a batch of writes ended.
pub enum Written {
    Yes,
    /// The connection is being closed: send the close frame.
    Closing,
    /// The socket failed: nothing more can be sent.
    SocketFailed,
}

/// The socket and what writing to it needs.
pub struct Writer {
    /// The connection's socket, read by the connection's loop between writes.
    pub socket: WebSocket,
    handle: ConnHandle,
    outbox: Outbox,
    pace: Pace,
    metrics: Arc<Metrics>,
}

impl Writer {
    pub fn new(
        socket: WebSocket,
        outbox: Outbox,
        handle: ConnHandle,
        pace: Pace,
        metrics: Arc<Metrics>,
    ) -> Self {
        Writer {
            socket,
            handle,
            outbox,
            pace,
            metrics,
        }
    }

    /// How often [`Writer::heartbeat`] should run.
    pub fn heartbeat_period(&self) -> Duration {
        self.pace.heartbeat
    }

    /// On a heartbeat tick: closes an expired token or an idle peer, or pings.
    pub async fn heartbeat(&mut self) -> Written {
        if unix_now() > self.handle.token_exp().saturating_add(EXP_LEEWAY_SECS) {
            self.handle
                .close(close_code::SESSION_REVOKED, "token expired");
            return Written::Closing;
        }
        if self.handle.silent_for() > self.pace.heartbeat * 2 {
            self.handle.close(close_code::NORMAL, "idle");
            return Written::Closing;
        }
        let ping = self.socket.send(Message::Ping(Default::default()));
        match tokio::time::timeout(self.pace.write_timeout, ping).await {
            Ok(Ok(())) => Written::Yes,
            Ok(Err(_)) => Written::SocketFailed,
            Err(_) => timed_out(&self.handle, &self.metrics),
        }
    }

    /// Writes the connection's own items (replies, resume starts, membership changes: never
    /// queued, so the connection's one task never waits for room in its own queue), then
    /// flushes.
    pub async fn write_own(&mut self, own: &mut Vec<Outbound>) -> Written {
        let mut writes = Vec::new();
        for item in own.drain(..) {
            self.outbox.apply(item, &mut writes);
            self.feed(&mut writes);
        }
        if own.capacity() > 0 {
            *own = Vec::new();
        }
        self.flush().await
    }

    /// Feeds what `first` and whatever else is queued (up to [`BATCH`]) turn into, then
    /// flushes once.
    pub async fn write_batch(&mut self, first: Outbound, queue: &mut Outgoing) -> Written {
        let mut item = Some(first);
        let mut count = 0;
        let mut writes = Vec::new();
        while let Some(next) = item.take() {
            self.handle.release(next.cost());
            self.outbox.apply(next, &mut writes);
            self.feed(&mut writes);
            count += 1;
            if count < BATCH {
                item = queue.try_recv();
            }
        }
        if queue.is_empty() {
            self.outbox.idle();
            queue.shrink_if_empty();
        }
        self.flush().await
    }

    /// Feeds what the outbox returned to the socket (written by the next flush).
    fn feed(&mut self, writes: &mut Vec<Write>) {
        let encoding = self.handle.encoding();
        for write in writes.drain(..) {
            let (data, frame_type, appended_at) = encode(write, encoding);
            self.socket.feed(data);
            self.metrics.frame_written(frame_type, appended_at);
        }
    }

    /// Writes what was fed; a close request interrupts a flush stuck on a reader that stopped
    /// reading (what is left is written before the close frame).
    async fn flush(&mut self) -> Written {
        let flushed = self.socket.flush_within(self.pace.write_timeout);
        tokio::select! {
            flushed = flushed => match flushed {
                Ok(Ok(())) => Written::Yes,
                Ok(Err(_)) => Written::SocketFailed,
                Err(Stalled) => timed_out(&self.handle, &self.metrics),
            },
            _ = self.handle.closed() => Written::Closing,
        }
    }

    /// Sends the close frame with the connection's close reason (bounded by a timeout).
    pub async fn send_close(&mut self) {
        let reason = self.handle.close_reason();
        let frame = reason.map(|r| CloseFrame {
            code: r.code.into(),
            reason: r.reason.into(),
        });
        let close = async {
            // After the peer's close frame the socket refuses ours; flushing sends the reply
            // tungstenite queued (the peer's own code echoed), completing the handshake.
            if self.socket.send(Message::Close(frame)).await.is_err() {
                let _ = self.socket.flush().await;
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
}

/// The peer took no bytes for the write timeout: it is too slow (4009).
fn timed_out(handle: &ConnHandle, metrics: &Metrics) -> Written {
    if handle.close_first(close_code::TOO_SLOW, "write timeout") {
        metrics.slow_closes.inc();
    }
    Written::Closing
}

/// A write as a WebSocket data frame, with its type and, for a live message, when it was
/// appended to the log.
fn encode(write: Write, encoding: Encoding) -> (Data, FrameType, Option<std::time::SystemTime>) {
    match write {
        Write::Message { entry, live } => (
            entry.frame(encoding),
            FrameType::Message,
            if live { entry.appended_at } else { None },
        ),
        Write::Frame(frame) => {
            let control = control_frame(&frame, encoding);
            (control.data, control.frame_type, None)
        }
        Write::Shared(frame) => (frame.data(encoding), frame.frame_type(), None),
    }
}
