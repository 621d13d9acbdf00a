//! The WebSocket writer of one connection, plain I/O: it pops the outbound queue, hands each
//! item to the connection's [`Outbox`] (ordering lives there), encodes what comes back as
//! WebSocket messages, writes everything queued and flushes once; it sends pings, closes idle
//! connections and expired tokens, closes with 4009 a peer whose socket takes no bytes for
//! `WRITE_TIMEOUT_MS`, and sends the close frame with the contract's code. Each frame written
//! is counted by type, and a live message's time since its log append is recorded.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chat_shared::auth::{EXP_LEEWAY_SECS, unix_now};
use chat_shared::protocol::close_code;
use chat_shared::protocol::codec::Encoding;
use futures::SinkExt;
use futures::stream::SplitSink;

use crate::metrics::{FrameType, Metrics};
use crate::outbound::{Outbound, Outbox, Write};
use crate::wire_entry::control_frame;
use crate::ws::handle::{ConnHandle, Outgoing};

/// Queue items written before one flush.
const BATCH: usize = 64;
/// Longest wait for the close frame to go out (a slow reader that reads again within it
/// learns why it was closed).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

type Sink = SplitSink<WebSocket, Message>;

/// How the writer paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub heartbeat: Duration,
    /// Longest a write (or flush) may wait for the peer to take bytes.
    pub write_timeout: Duration,
}

/// How a batch of writes ended.
enum Written {
    Yes,
    /// The connection is being closed: send the close frame.
    Closing,
    /// The socket failed: nothing more can be sent.
    SocketFailed,
}

struct Writer {
    sink: Sink,
    handle: ConnHandle,
    outbox: Outbox,
    writes: Vec<Write>,
    write_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Runs until the connection is closed or the socket fails.
pub async fn run(
    sink: Sink,
    mut queue: Outgoing,
    outbox: Outbox,
    handle: ConnHandle,
    pace: Pace,
    metrics: Arc<Metrics>,
) {
    let mut writer = Writer {
        sink,
        handle: handle.clone(),
        outbox,
        writes: Vec::new(),
        write_timeout: pace.write_timeout,
        metrics,
    };
    let mut ticker = tokio::time::interval(pace.heartbeat);
    ticker.tick().await;
    loop {
        let written = tokio::select! {
            biased;
            _ = handle.closed() => break,
            item = queue.recv() => {
                let Some(item) = item else { break };
                writer.write_batch(item, &mut queue).await
            }
            _ = ticker.tick() => {
                if unix_now() > handle.token_exp().saturating_add(EXP_LEEWAY_SECS) {
                    handle.close(close_code::SESSION_REVOKED, "token expired");
                    Written::Closing
                } else if handle.silent_for() > pace.heartbeat * 2 {
                    handle.close(close_code::NORMAL, "idle");
                    Written::Closing
                } else {
                    let ping = writer.sink.send(Message::Ping(Default::default()));
                    match tokio::time::timeout(pace.write_timeout, ping).await {
                        Ok(Ok(())) => Written::Yes,
                        Ok(Err(_)) => Written::SocketFailed,
                        Err(_) => timed_out(&writer.handle, &writer.metrics),
                    }
                }
            }
        };
        match written {
            Written::Yes => {}
            Written::Closing => break,
            Written::SocketFailed => return handle.close(close_code::NORMAL, "socket closed"),
        }
    }
    writer.send_close().await;
}

impl Writer {
    /// Writes what `first` and whatever else is queued (up to [`BATCH`]) turn into, then
    /// flushes once. A close request interrupts a write stuck on a reader that stopped reading.
    async fn write_batch(&mut self, first: Outbound, queue: &mut Outgoing) -> Written {
        let mut item = Some(first);
        let mut count = 0;
        let encoding = self.handle.encoding();
        while let Some(next) = item.take() {
            self.handle.release(next.cost());
            self.outbox.apply(next, &mut self.writes);
            for write in self.writes.drain(..) {
                let (message, frame_type, appended_at) = encode(write, encoding);
                // The timeout is per message: it measures the peer's progress, not the batch.
                let fed = tokio::time::timeout(self.write_timeout, self.sink.feed(message));
                tokio::select! {
                    fed = fed => match fed {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Written::SocketFailed,
                        Err(_) => return timed_out(&self.handle, &self.metrics),
                    },
                    _ = self.handle.closed() => return Written::Closing,
                }
                self.metrics.frame_written(frame_type, appended_at);
            }
            count += 1;
            if count < BATCH {
                item = queue.try_recv();
            }
        }
        if queue.is_empty() {
            self.outbox.idle();
            self.writes = Vec::new();
            queue.shrink_if_empty();
        }
        let flushed = tokio::time::timeout(self.write_timeout, self.sink.flush());
        tokio::select! {
            flushed = flushed => match flushed {
                Ok(Ok(())) => Written::Yes,
                Ok(Err(_)) => Written::SocketFailed,
                Err(_) => timed_out(&self.handle, &self.metrics),
            },
            _ = self.handle.closed() => Written::Closing,
        }
    }

    async fn send_close(&mut self) {
        let reason = self.handle.close_reason();
        let frame = reason.map(|r| CloseFrame {
            code: r.code,
            reason: r.reason.into(),
        });
        let close = async {
            // After the peer's close frame the socket refuses ours; flushing sends the reply
            // tungstenite queued (the peer's own code echoed), completing the handshake.
            if self.sink.send(Message::Close(frame)).await.is_err() {
                let _ = self.sink.flush().await;
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

/// A write as a WebSocket message, with its type and, for a live message, when it was
/// appended to the log.
fn encode(write: Write, encoding: Encoding) -> (Message, FrameType, Option<std::time::SystemTime>) {
    match write {
        Write::Message { entry, live } => (
            entry.frame(encoding),
            FrameType::Message,
            if live { entry.appended_at } else { None },
        ),
        Write::Frame(frame) => {
            let control = control_frame(&frame, encoding);
            (control.message, control.frame_type, None)
        }
    }
}
