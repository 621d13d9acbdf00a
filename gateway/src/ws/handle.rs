//! A connection as the rest of the gateway sees it: where to queue frames for it, who it is,
//! and how to close it with a contract close code from anywhere (hub, events, drain).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_shared::bus::LogEntry;
use chat_shared::protocol::codec::Encoding;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::delivery::{ControlFrame, Delivery};

/// What the connection's writer task is asked to do, in order. Kept to two words (rare,
/// larger items are boxed): every connection's queue preallocates a block of these.
#[derive(Debug)]
pub enum Outbound {
    /// A live entry, shared by every recipient.
    Deliver(Arc<Delivery>),
    /// A frame for this connection only (ack, error, pong, …).
    Frame(Box<ControlFrame>),
    /// A resume of this guild starts: hold its live entries until the replay is written.
    ResumeBegin(Box<ResumeBegin>),
    /// The client's first frame was handled (any `resume` in it has begun): live messages
    /// held since the connection opened may go out.
    ReleaseLive,
    /// A page of the replay.
    ResumeData(Box<ResumePage>),
}

impl Outbound {
    pub fn frame(frame: ControlFrame) -> Self {
        Outbound::Frame(Box::new(frame))
    }
}

/// A resume of `guild` from seq `after`.
#[derive(Debug)]
pub struct ResumeBegin {
    pub guild: Arc<str>,
    pub after: u64,
}

/// A page of a replay; `done` on the last one.
#[derive(Debug)]
pub struct ResumePage {
    pub guild: Arc<str>,
    pub entries: Vec<LogEntry>,
    pub gap: bool,
    pub done: bool,
}

/// Why and how a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

/// Shared handle to one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    id: u64,
    user_id: Arc<str>,
    admin: bool,
    encoding: Encoding,
    tx: mpsc::Sender<Outbound>,
    closed: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
    guilds_changed: Notify,
    started: Instant,
    last_inbound_ms: AtomicU64,
    token_exp: AtomicU64,
}

/// Result of queuing a live entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// The queue was full: the connection is closed with 4009 (by this call).
    TooSlow,
    /// The queue was full and the connection was already closing: the entry is dropped.
    Dropped,
    Gone,
}

impl ConnHandle {
    pub fn new(
        id: u64,
        user_id: &str,
        admin: bool,
        encoding: Encoding,
        queue: usize,
        token_exp: u64,
    ) -> (ConnHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(queue);
        let inner = Inner {
            id,
            user_id: Arc::from(user_id),
            admin,
            encoding,
            tx,
            closed: CancellationToken::new(),
            close_reason: Mutex::new(None),
            guilds_changed: Notify::new(),
            started: Instant::now(),
            last_inbound_ms: AtomicU64::new(0),
            token_exp: AtomicU64::new(token_exp),
        };
        (ConnHandle(Arc::new(inner)), rx)
    }

    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub fn user_id(&self) -> &Arc<str> {
        &self.0.user_id
    }

    pub fn is_admin(&self) -> bool {
        self.0.admin
    }

    pub fn encoding(&self) -> Encoding {
        self.0.encoding
    }

    /// Queues a live entry without waiting; a full queue closes the connection with 4009.
    pub fn deliver(&self, delivery: &Arc<Delivery>) -> Queued {
        match self.0.tx.try_send(Outbound::Deliver(delivery.clone())) {
            Ok(()) => Queued::Yes,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.close_first(chat_shared::protocol::close_code::TOO_SLOW, "too slow") {
                    Queued::TooSlow
                } else {
                    Queued::Dropped
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Gone,
        }
    }

    /// Queues a frame for this connection, waiting for room.
    pub async fn send(&self, item: Outbound) -> bool {
        tokio::select! {
            sent = self.0.tx.send(item) => sent.is_ok(),
            _ = self.0.closed.cancelled() => false,
        }
    }

    /// Queues a frame without waiting (dropped when the queue is full).
    pub fn try_send(&self, item: Outbound) -> bool {
        self.0.tx.try_send(item).is_ok()
    }

    /// Asks the connection to close with `code`; the first reason wins.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.close_first(code, reason);
    }

    /// [`ConnHandle::close`], telling whether this call's reason won.
    fn close_first(&self, code: u16, reason: &'static str) -> bool {
        let mut slot = self.0.close_reason.lock();
        let first = slot.is_none();
        if first {
            *slot = Some(CloseReason { code, reason });
        }
        drop(slot);
        self.0.closed.cancel();
        first
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.0.close_reason.lock()
    }

    pub async fn closed(&self) {
        self.0.closed.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.is_cancelled()
    }

    /// Tells the connection its guilds changed in the session store.
    pub fn notify_guilds_changed(&self) {
        self.0.guilds_changed.notify_one();
    }

    pub async fn guilds_changed(&self) {
        self.0.guilds_changed.notified().await
    }

    /// When the connection's token expires (seconds since the Unix epoch).
    pub fn token_exp(&self) -> u64 {
        self.0.token_exp.load(Ordering::Relaxed)
    }

    /// Takes the expiry of a refreshed token.
    pub fn set_token_exp(&self, exp: u64) {
        self.0.token_exp.store(exp, Ordering::Relaxed);
    }

    /// Records inbound traffic (any frame, pongs included).
    pub fn touch(&self) {
        let ms = self.0.started.elapsed().as_millis() as u64;
        self.0.last_inbound_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last inbound traffic (or since the start).
    pub fn silent_for(&self) -> Duration {
        let last = self.0.last_inbound_ms.load(Ordering::Relaxed);
        self.0
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}
