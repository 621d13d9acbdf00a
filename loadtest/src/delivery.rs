//! The receiving side of message scenarios: the run-wide [`DeliveryBook`] (what was expected,
//! received, duplicated, reordered, refused), each client's [`ClientLedger`] (which messages it
//! saw, the last `seq` per guild for `resume`) and the [`receive`] loop that feeds them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use chat_shared::protocol::codec::Encoding;
use chat_shared::protocol::{ErrorFrame, SequencedMessage, ServerFrame};
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ns;
use crate::membership::Membership;
use crate::probe;
use crate::stats::{LatencyBook, SeenSet, Tally};
use crate::wire::{Incoming, decode_server};

/// Messages scheduled in `[start_ns, end_ns)` are measured; earlier ones are warm-up.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    pub fn contains(&self, ns: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&ns)
    }
}

/// Run-wide delivery accounting.
pub struct DeliveryBook {
    pub membership: Arc<Membership>,
    pub window: Window,
    pub sent: AtomicU64,
    pub sent_measured: AtomicU64,
    /// Deliveries owed for measured messages (members of the guild, minus refused sends).
    pub expected: AtomicU64,
    /// Unique deliveries of measured messages.
    pub received: AtomicU64,
    /// Unique deliveries of any message of this run (live rate).
    pub received_all: AtomicU64,
    pub duplicates: AtomicU64,
    pub out_of_order: AtomicU64,
    /// Out-of-order deliveries that arrived while a `resume` was being answered (live
    /// messages overtaking the replay).
    pub out_of_order_in_resume: AtomicU64,
    /// Messages that are not from this run.
    pub foreign: AtomicU64,
    pub acks: AtomicU64,
    pub refused: AtomicU64,
    pub send_errors: Tally,
    pub disconnects: Tally,
    pub latency: LatencyBook,
    /// Clients that finished a resume, and how long after their drop (ns).
    pub resumed_clients: AtomicU64,
    /// When the last client so far finished its resume (ns, see [`crate::clock`]).
    pub last_resume_done_ns: AtomicU64,
    pub resume_times: Mutex<Vec<u64>>,
    /// `presence` snapshots and `presence_diff` frames received by receivers (issue #13).
    pub presence_snapshots: AtomicU64,
    pub presence_diffs: AtomicU64,
}

impl DeliveryBook {
    pub fn new(membership: Arc<Membership>, window: Window) -> Self {
        DeliveryBook {
            membership,
            window,
            sent: AtomicU64::new(0),
            sent_measured: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            received: AtomicU64::new(0),
            received_all: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            out_of_order_in_resume: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            send_errors: Tally::default(),
            disconnects: Tally::default(),
            latency: LatencyBook::new(window.start_ns),
            resumed_clients: AtomicU64::new(0),
            last_resume_done_ns: AtomicU64::new(0),
            resume_times: Mutex::new(Vec::new()),
            presence_snapshots: AtomicU64::new(0),
            presence_diffs: AtomicU64::new(0),
        }
    }

    /// A message to `guild` is about to be written.
    pub fn note_sent(&self, guild: usize, measured: bool) {
        self.sent.fetch_add(1, Relaxed);
        if measured {
            self.sent_measured.fetch_add(1, Relaxed);
            self.expected
                .fetch_add(self.membership.members(guild), Relaxed);
        }
    }

    /// A message noted as sent never left (or was refused): nobody owes its deliveries.
    pub fn forget_sent(&self, guild: usize, measured: bool) {
        if measured {
            self.expected
                .fetch_sub(self.membership.members(guild), Relaxed);
        }
    }

    /// Whether every owed measured delivery has arrived and every send was answered.
    pub fn complete(&self) -> bool {
        let answered = self.acks.load(Relaxed) + self.refused.load(Relaxed);
        self.received.load(Relaxed) >= self.expected.load(Relaxed)
            && answered >= self.sent.load(Relaxed)
    }

    fn on_error(&self, error: &ErrorFrame) {
        self.send_errors.add(format!("error {}", error.code));
        let Some((_, guild, measured)) =
            error.reference.as_deref().and_then(probe::parse_reference)
        else {
            return;
        };
        if guild < self.membership.guild_count() {
            self.refused.fetch_add(1, Relaxed);
            self.forget_sent(guild, measured);
        }
    }
}

/// One client's view: what it received, and where it is in each of its guilds.
pub struct ClientLedger {
    pub client: usize,
    /// Receivers count deliveries; dedicated senders (storm) only read acks and errors.
    pub counting: bool,
    seen: SeenSet,
    last_seq: Vec<(usize, u64)>,
    pending_resumes: usize,
    dropped_at_ns: u64,
}

impl ClientLedger {
    pub fn new(client: usize, guilds: &[usize], counting: bool) -> Self {
        ClientLedger {
            client,
            counting,
            seen: SeenSet::default(),
            last_seq: guilds.iter().map(|g| (*g, 0)).collect(),
            pending_resumes: 0,
            dropped_at_ns: 0,
        }
    }

    /// The `resume` positions: guild id → last seq seen.
    pub fn positions(&self, membership: &Membership) -> std::collections::BTreeMap<String, u64> {
        self.last_seq
            .iter()
            .map(|(g, seq)| (membership.guild_id(*g).to_owned(), *seq))
            .collect()
    }

    /// A resume was sent after a drop at `dropped_at_ns`; wait for one `resumed` per guild.
    pub fn expect_resumes(&mut self, dropped_at_ns: u64) {
        self.pending_resumes = self.last_seq.len();
        self.dropped_at_ns = dropped_at_ns;
    }

    fn on_frame(&mut self, book: &DeliveryBook, frame: ServerFrame) {
        match frame {
            ServerFrame::Message(message) if self.counting => self.on_message(book, &message),
            ServerFrame::Ack(_) => {
                book.acks.fetch_add(1, Relaxed);
            }
            ServerFrame::Error(error) => book.on_error(&error),
            ServerFrame::Presence(_) if self.counting => {
                book.presence_snapshots.fetch_add(1, Relaxed);
            }
            ServerFrame::PresenceDiff(_) if self.counting => {
                book.presence_diffs.fetch_add(1, Relaxed);
            }
            ServerFrame::Resumed(_) if self.pending_resumes > 0 => {
                self.pending_resumes -= 1;
                if self.pending_resumes == 0 {
                    let now = now_ns();
                    book.last_resume_done_ns.fetch_max(now, Relaxed);
                    let took = now.saturating_sub(self.dropped_at_ns);
                    book.resume_times.lock().push(took);
                    book.resumed_clients.fetch_add(1, Relaxed);
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, book: &DeliveryBook, sequenced: &SequencedMessage) {
        let now = now_ns();
        let message = &sequenced.message;
        let membership = &book.membership;
        let (Some(number), Some(guild)) = (
            probe::parse_message_id(membership.nonce(), &message.message_id),
            membership.guild_index(&message.guild_id),
        ) else {
            book.foreign.fetch_add(1, Relaxed);
            return;
        };
        if !self.seen.insert(number) {
            book.duplicates.fetch_add(1, Relaxed);
            return;
        }
        book.received_all.fetch_add(1, Relaxed);
        if let Some((_, last)) = self.last_seq.iter_mut().find(|(g, _)| *g == guild) {
            if sequenced.seq <= *last && self.pending_resumes > 0 {
                book.out_of_order_in_resume.fetch_add(1, Relaxed);
            } else if sequenced.seq <= *last {
                book.out_of_order.fetch_add(1, Relaxed);
            }
            *last = (*last).max(sequenced.seq);
        }
        let Some(scheduled) = probe::parse_text(&message.text) else {
            book.foreign.fetch_add(1, Relaxed);
            return;
        };
        if book.window.contains(scheduled) {
            book.received.fetch_add(1, Relaxed);
            book.latency
                .record(self.client, now, now.saturating_sub(scheduled));
        }
    }
}

/// Why [`receive`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    Stopped,
    Closed(String),
}

/// Reads frames into `ledger` until `stop` fires or the connection ends.
pub async fn receive<S>(
    stream: &mut S,
    ledger: &mut ClientLedger,
    book: &DeliveryBook,
    encoding: Encoding,
    stop: &CancellationToken,
) -> ReadEnd
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return ReadEnd::Stopped,
            next = stream.next() => next,
        };
        let message = match next {
            None => return ReadEnd::Closed("connection ended".into()),
            Some(Err(e)) => return ReadEnd::Closed(describe_ws_error(&e)),
            Some(Ok(message)) => message,
        };
        match decode_server(message, encoding) {
            Incoming::Frame(frame) => ledger.on_frame(book, frame),
            Incoming::Garbage(_) => book.disconnects.add("undecodable frame (kept open)"),
            Incoming::Closed(code) => {
                let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
                return ReadEnd::Closed(format!("closed by server (code {code})"));
            }
            Incoming::Control => {}
        }
    }
}

/// A short, stable description of a socket error for the failures table.
pub fn describe_ws_error(error: &WsError) -> String {
    match error {
        WsError::Io(e) => format!("io {}", e.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "connection closed".into(),
        WsError::Protocol(p) => format!("protocol {p}"),
        WsError::Capacity(c) => format!("capacity {c}"),
        _ => "websocket error".into(),
    }
}
