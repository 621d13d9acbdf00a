//! The writer task of one connection: it drains the outbound queue into the socket (writing
//! everything queued, then flushing once), keeps each guild in log order without duplicates
//! across live delivery and resume, sends pings, closes idle connections and expired tokens,
//! and sends the close frame with the contract's code. Each frame written is counted by type,
//! and a live message's time since its log append is recorded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chat_shared::auth::{EXP_LEEWAY_SECS, unix_now};
use chat_shared::protocol::{Resumed, SequencedMessage, ServerFrame, close_code};
use futures::SinkExt;
use futures::stream::SplitSink;
use tokio::sync::mpsc;

use crate::delivery::{ControlFrame, Delivery, control_frame};
use crate::metrics::{FrameType, Metrics};
use crate::ws::handle::{ConnHandle, Outbound, ResumeBegin, ResumePage};

/// Queue items written before one flush.
const BATCH: usize = 64;
/// Longest wait for the close frame to go out (a slow reader that reads again within it
/// learns why it was closed).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long live messages are held after the connection opens, waiting for the client's first
/// frame (usually a `resume`), so a resuming client gets the replay before newer live messages.
const INITIAL_HOLD: Duration = Duration::from_millis(250);
/// Live messages held at most during that time; past it they go out.
const INITIAL_HOLD_MAX: usize = 4096;

type Sink = SplitSink<WebSocket, Message>;

/// How a batch of writes ended.
enum Written {
    Yes,
    /// The connection is being closed: send the close frame.
    Closing,
    /// The socket failed: nothing more can be sent.
    SocketFailed,
}

/// A socket message ready to write, with what the metrics need to know about it.
struct Outgoing {
    message: Message,
    frame_type: FrameType,
    /// For a live message: when it was appended to the log.
    appended_at: Option<SystemTime>,
}

impl Outgoing {
    fn control(frame: ControlFrame) -> Self {
        Outgoing {
            message: frame.message,
            frame_type: frame.frame_type,
            appended_at: None,
        }
    }

    fn live(delivery: &Delivery, encoding: chat_shared::protocol::codec::Encoding) -> Self {
        Outgoing {
            message: delivery.frame(encoding),
            frame_type: FrameType::Message,
            appended_at: delivery.appended_at,
        }
    }
}

/// What this connection has been sent of one guild.
#[derive(Debug, Default)]
struct Cursor {
    /// Every visible entry in `lo..=hi` has been sent.
    covered: Option<(u64, u64)>,
    /// Live entries held while a resume of this guild is being written.
    held: Option<Vec<Arc<Delivery>>>,
    /// The position of the resume being written, its entries written so far and their last seq.
    resume_after: u64,
    replayed: u64,
    last_replayed: u64,
    gap: bool,
}

impl Cursor {
    fn has_sent(&self, seq: u64) -> bool {
        self.covered.is_some_and(|(lo, hi)| lo <= seq && seq <= hi)
    }

    fn is_new_live(&self, seq: u64) -> bool {
        self.covered.is_none_or(|(_, hi)| seq > hi)
    }

    /// After a resume from `resume_after`: everything visible up to the last replayed entry
    /// has been sent (the replay read the log after the live entries already sent).
    fn finish_resume(&mut self) {
        let from = self.resume_after.saturating_add(1);
        let to = self.last_replayed.max(self.resume_after);
        self.covered = Some(match self.covered {
            None => (from, to),
            Some((lo, hi)) => (lo.min(from), hi.max(to)),
        });
    }

    fn mark_live(&mut self, seq: u64) {
        self.covered = Some(match self.covered {
            None => (seq, seq),
            Some((lo, hi)) => (lo, hi.max(seq)),
        });
    }
}

struct Writer {
    sink: Sink,
    handle: ConnHandle,
    cursors: HashMap<Arc<str>, Cursor>,
    /// Live messages held since the connection opened, until the client's first frame.
    initial: Option<Vec<Arc<Delivery>>>,
    metrics: Arc<Metrics>,
}

/// Runs until the connection is closed or the socket fails.
pub async fn run(
    sink: Sink,
    mut queue: mpsc::Receiver<Outbound>,
    handle: ConnHandle,
    heartbeat: Duration,
    metrics: Arc<Metrics>,
) {
    let mut writer = Writer {
        sink,
        handle: handle.clone(),
        cursors: HashMap::new(),
        initial: Some(Vec::new()),
        metrics,
    };
    let hold_until = tokio::time::Instant::now() + INITIAL_HOLD;
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = handle.closed() => break,
            item = queue.recv() => {
                let Some(item) = item else { break };
                match writer.write_batch(item, &mut queue).await {
                    Written::Yes => {}
                    Written::Closing => break,
                    Written::SocketFailed => return handle.close(close_code::NORMAL, "socket closed"),
                }
            }
            _ = tokio::time::sleep_until(hold_until), if writer.initial.is_some() => {
                match writer.write_batch(Outbound::ReleaseLive, &mut queue).await {
                    Written::Yes => {}
                    Written::Closing => break,
                    Written::SocketFailed => return handle.close(close_code::NORMAL, "socket closed"),
                }
            }
            _ = ticker.tick() => {
                if unix_now() > handle.token_exp().saturating_add(EXP_LEEWAY_SECS) {
                    handle.close(close_code::SESSION_REVOKED, "token expired");
                } else if handle.silent_for() > heartbeat * 2 {
                    handle.close(close_code::NORMAL, "idle");
                } else if !writer.send_now(Message::Ping(Default::default())).await {
                    handle.close(close_code::NORMAL, "socket closed");
                    return;
                }
            }
        }
    }
    writer.send_close().await;
}

impl Writer {
    /// Writes `first` and whatever else is queued (up to [`BATCH`]), then flushes once. A
    /// close request interrupts a write stuck on a reader that stopped reading.
    async fn write_batch(
        &mut self,
        first: Outbound,
        queue: &mut mpsc::Receiver<Outbound>,
    ) -> Written {
        let mut item = Some(first);
        let mut count = 0;
        while let Some(next) = item.take() {
            for out in self.frames_for(next) {
                tokio::select! {
                    fed = self.sink.feed(out.message) => if fed.is_err() { return Written::SocketFailed },
                    _ = self.handle.closed() => return Written::Closing,
                }
                self.metrics.frame_written(out.frame_type, out.appended_at);
            }
            count += 1;
            if count < BATCH {
                item = queue.try_recv().ok();
            }
        }
        tokio::select! {
            flushed = self.sink.flush() => if flushed.is_ok() { Written::Yes } else { Written::SocketFailed },
            _ = self.handle.closed() => Written::Closing,
        }
    }

    async fn send_now(&mut self, message: Message) -> bool {
        self.sink.send(message).await.is_ok()
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

    /// A live message's frame, unless its guild is being resumed (then it is held) or it was
    /// already sent.
    fn live(&mut self, delivery: Arc<Delivery>) -> Option<Outgoing> {
        let cursor = self
            .cursors
            .entry(Arc::from(delivery.guild_id()))
            .or_default();
        if let Some(held) = cursor.held.as_mut() {
            held.push(delivery);
            return None;
        }
        if !cursor.is_new_live(delivery.seq) {
            return None;
        }
        cursor.mark_live(delivery.seq);
        Some(Outgoing::live(&delivery, self.handle.encoding()))
    }

    /// The socket messages an outbound item turns into (none when already sent).
    fn frames_for(&mut self, item: Outbound) -> Frames {
        let encoding = self.handle.encoding();
        match item {
            Outbound::Frame(frame) => one(Some(Outgoing::control(*frame))),
            Outbound::Deliver(delivery) => match self.initial.as_mut() {
                Some(initial) if initial.len() < INITIAL_HOLD_MAX => {
                    initial.push(delivery);
                    one(None)
                }
                _ => one(self.live(delivery)),
            },
            Outbound::ReleaseLive => many(
                self.initial
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|delivery| self.live(delivery))
                    .collect(),
            ),
            Outbound::ResumeBegin(begin) => {
                let ResumeBegin { guild, after } = *begin;
                let early = match self.initial.as_mut() {
                    Some(initial) => drain_guild(initial, &guild),
                    None => Vec::new(),
                };
                let cursor = self.cursors.entry(guild).or_default();
                cursor.held.get_or_insert_with(Vec::new).extend(early);
                cursor.resume_after = after;
                cursor.replayed = 0;
                cursor.last_replayed = 0;
                cursor.gap = false;
                one(None)
            }
            Outbound::ResumeData(page) => {
                let ResumePage {
                    guild,
                    entries,
                    gap,
                    done,
                } = *page;
                let cursor = self.cursors.entry(guild.clone()).or_default();
                let mut out = Vec::with_capacity(entries.len() + 1);
                for entry in entries {
                    if cursor.has_sent(entry.seq) {
                        continue;
                    }
                    cursor.replayed += 1;
                    cursor.last_replayed = cursor.last_replayed.max(entry.seq);
                    let frame = ServerFrame::Message(SequencedMessage {
                        seq: entry.seq,
                        message: entry.message,
                    });
                    out.push(Outgoing::control(control_frame(&frame, encoding)));
                }
                cursor.gap |= gap;
                if done {
                    cursor.finish_resume();
                    out.push(Outgoing::control(control_frame(
                        &ServerFrame::Resumed(Resumed {
                            guild_id: guild.to_string(),
                            replayed: cursor.replayed,
                            gap: cursor.gap,
                        }),
                        encoding,
                    )));
                    for delivery in cursor.held.take().unwrap_or_default() {
                        if cursor.is_new_live(delivery.seq) {
                            cursor.mark_live(delivery.seq);
                            out.push(Outgoing::live(&delivery, encoding));
                        }
                    }
                }
                many(out)
            }
        }
    }
}

/// The socket messages one outbound item turns into. Most items are one live message, which
/// this carries without a heap allocation per recipient; replays carry their page.
type Frames = std::iter::Chain<std::option::IntoIter<Outgoing>, std::vec::IntoIter<Outgoing>>;

fn one(out: Option<Outgoing>) -> Frames {
    out.into_iter().chain(Vec::new())
}

fn many(outs: Vec<Outgoing>) -> Frames {
    None.into_iter().chain(outs)
}

/// Takes the messages of `guild` out of `held`, keeping their order.
fn drain_guild(held: &mut Vec<Arc<Delivery>>, guild: &str) -> Vec<Arc<Delivery>> {
    let (theirs, rest) = std::mem::take(held)
        .into_iter()
        .partition(|d| d.guild_id() == guild);
    *held = rest;
    theirs
}
