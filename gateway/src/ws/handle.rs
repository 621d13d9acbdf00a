//! A connection as the rest of the gateway sees it: where to queue frames for it, who it is,
//! and how to close it with a contract close code from anywhere (hub, events, drain). The
//! queue is bounded twice: in items (`OUTBOUND_QUEUE`) and in bytes (`OUTBOUND_QUEUE_BYTES`,
//! what the queued items pin in memory); a live entry that does not fit closes the connection
//! with 4009, a frame of the connection's own (a replay page) waits for room.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_shared::protocol::codec::Encoding;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::wire_entry::WireEntry;
use crate::ws::queue::Queue;

pub use crate::outbound::{Membership, Outbound, ResumeBegin, ResumePage};

/// Why and how a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

/// How much one connection's outbound queue holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    pub items: usize,
    pub bytes: usize,
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
    queue: Queue<Outbound>,
    /// Bytes the queued items account for, and the most allowed.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// Signalled when the writer takes items out.
    room: Notify,
    /// Set once, when the connection is asked to close: what [`ConnHandle::is_closed`] reads
    /// on every delivery. A flag and a [`Notify`] rather than a cancellation token, which
    /// allocates a tree node (~110 bytes) per connection.
    is_closed: AtomicBool,
    /// Wakes whoever waits in [`ConnHandle::closed`] once the flag is set.
    closing: Notify,
    close_reason: Mutex<Option<CloseReason>>,
    /// Set when the session store changed the user's guilds, taken by the connection's task.
    guilds_changed: AtomicBool,
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
        queue: QueueBounds,
        token_exp: u64,
    ) -> (ConnHandle, Outgoing) {
        let inner = Inner {
            id,
            user_id: Arc::from(user_id),
            admin,
            encoding,
            queue: Queue::new(queue.items),
            queued_bytes: AtomicUsize::new(0),
            max_bytes: queue.bytes.max(1),
            room: Notify::new(),
            is_closed: AtomicBool::new(false),
            closing: Notify::new(),
            close_reason: Mutex::new(None),
            guilds_changed: AtomicBool::new(false),
            started: Instant::now(),
            last_inbound_ms: AtomicU64::new(0),
            token_exp: AtomicU64::new(token_exp),
        };
        let handle = ConnHandle(Arc::new(inner));
        (handle.clone(), Outgoing(handle))
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

    /// Queues a live entry without waiting; a full queue (items or bytes) closes the
    /// connection with 4009.
    pub fn queue_live(&self, entry: &Arc<WireEntry>) -> Queued {
        if self.is_closed() {
            return Queued::Gone;
        }
        if self.try_send(Outbound::Live(entry.clone())) {
            return Queued::Yes;
        }
        if self.close_first(chat_shared::protocol::close_code::TOO_SLOW, "too slow") {
            Queued::TooSlow
        } else {
            Queued::Dropped
        }
    }

    /// Queues an item for this connection, waiting for room (items and bytes); `false` once
    /// the connection is closed.
    pub async fn send(&self, item: Outbound) -> bool {
        let cost = item.cost();
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.reserve(cost) {
                break;
            }
            tokio::select! {
                _ = room => {}
                _ = self.closed() => return false,
            }
        }
        let mut item = item;
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.0.queue.push(item) {
                Ok(()) => return true,
                Err(back) => item = back,
            }
            tokio::select! {
                _ = room => {}
                _ = self.closed() => {
                    self.release(cost);
                    return false;
                }
            }
        }
    }

    /// Queues an item without waiting (`false`, and dropped, when there is no room).
    pub fn try_send(&self, item: Outbound) -> bool {
        let cost = item.cost();
        if !self.reserve(cost) {
            return false;
        }
        if self.0.queue.push(item).is_ok() {
            return true;
        }
        self.release(cost);
        false
    }

    /// Accounts for `cost` more queued bytes when they fit (an item larger than the bound
    /// fits an empty queue, so every item can be sent eventually).
    fn reserve(&self, cost: usize) -> bool {
        self.0
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued.saturating_add(cost) <= self.0.max_bytes)
                    .then_some(queued.saturating_add(cost))
            })
            .is_ok()
    }

    /// The writer took an item of `cost` bytes out of the queue.
    pub fn release(&self, cost: usize) {
        self.0.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
        self.0.room.notify_waiters();
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.0.queued_bytes.load(Ordering::Acquire)
    }

    /// Asks the connection to close with `code`; the first reason wins.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.close_first(code, reason);
    }

    /// [`ConnHandle::close`], telling whether this call's reason won.
    pub fn close_first(&self, code: u16, reason: &'static str) -> bool {
        let mut slot = self.0.close_reason.lock();
        let first = slot.is_none();
        if first {
            *slot = Some(CloseReason { code, reason });
        }
        drop(slot);
        self.0.is_closed.store(true, Ordering::Release);
        self.0.closing.notify_waiters();
        self.0.queue.wake();
        first
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.0.close_reason.lock()
    }

    /// Resolves once the connection is asked to close (at once if it was).
    pub async fn closed(&self) {
        loop {
            let closing = self.0.closing.notified();
            tokio::pin!(closing);
            // Registered before the flag is read: a close in between still wakes it.
            closing.as_mut().enable();
            if self.is_closed() {
                return;
            }
            closing.await;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed.load(Ordering::Acquire)
    }

    /// Tells the connection its guilds changed in the session store.
    pub fn notify_guilds_changed(&self) {
        self.0.guilds_changed.store(true, Ordering::Release);
        self.0.queue.wake();
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

/// The writer's end of a connection's queue (see [`crate::ws::queue`]: nothing allocated
/// while it is empty).
#[derive(Debug)]
pub struct Outgoing(ConnHandle);

/// What wakes a connection's task, in the order it is looked at.
#[derive(Debug)]
pub enum Wake {
    /// The connection is asked to close.
    Closed,
    Item(Outbound),
    /// The session store changed the user's guilds.
    GuildsChanged,
}

impl Outgoing {
    /// The connection's close, its next queued item or a change of its guilds, waiting for
    /// one: one waiter for the three, so an idle connection's task keeps one future, not three.
    pub async fn next(&mut self) -> Wake {
        let inner = &self.0.0;
        loop {
            let ready = inner.queue.notified();
            tokio::pin!(ready);
            // Registered before looking: a push, close or change in between still wakes it.
            ready.as_mut().enable();
            if inner.is_closed.load(Ordering::Acquire) {
                return Wake::Closed;
            }
            if let Some(item) = inner.queue.pop() {
                return Wake::Item(item);
            }
            if inner.guilds_changed.swap(false, Ordering::AcqRel) {
                return Wake::GuildsChanged;
            }
            ready.await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.0.0.queue.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.0.0.queue.is_empty()
    }

    /// Gives the queue's buffer back when it is empty (call when idle after a batch).
    pub fn shrink_if_empty(&self) {
        self.0.0.queue.shrink_if_empty();
    }
}

#[cfg(test)]
mod tests {
    use chat_shared::protocol::{Pong, ServerFrame};

    use super::*;

    fn pong() -> Outbound {
        Outbound::frame(ServerFrame::Pong(Pong { reference: None }))
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_as_well_as_items() {
        let cost = pong().cost();
        let bounds = QueueBounds {
            items: 100,
            bytes: cost * 3,
        };
        let (handle, mut rx) = ConnHandle::new(1, "u1", false, Encoding::Json, bounds, 0);
        for _ in 0..3 {
            assert!(handle.try_send(pong()));
        }
        assert!(
            !handle.try_send(pong()),
            "a fourth does not fit in the bytes"
        );
        assert_eq!(handle.queued_bytes(), cost * 3);
        // A waiting send goes in once the writer takes one out.
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.send(pong()).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let taken = rx.try_recv().expect("queued");
        handle.release(taken.cost());
        assert!(waiting.await.expect("task"));
        assert_eq!(handle.queued_bytes(), cost * 3);
    }

    async fn next(rx: &mut Outgoing) -> Wake {
        let wake = tokio::time::timeout(std::time::Duration::from_secs(1), rx.next());
        wake.await.expect("woken")
    }

    #[tokio::test]
    async fn the_task_wakes_for_an_item_a_guild_change_and_the_close_in_that_order() {
        let bounds = QueueBounds {
            items: 10,
            bytes: 1 << 20,
        };
        let (handle, mut rx) = ConnHandle::new(1, "u1", false, Encoding::Json, bounds, 0);
        // Each wakes a waiting task.
        let waiting = tokio::spawn(async move {
            let item = next(&mut rx).await;
            let change = next(&mut rx).await;
            (item, change, rx)
        });
        tokio::task::yield_now().await;
        assert!(handle.try_send(pong()));
        tokio::task::yield_now().await;
        handle.notify_guilds_changed();
        let (item, change, mut rx) = waiting.await.expect("task");
        assert!(matches!(item, Wake::Item(_)), "{item:?}");
        assert!(matches!(change, Wake::GuildsChanged), "{change:?}");
        // Queued together: the item before the change, the close before both.
        assert!(handle.try_send(pong()));
        handle.notify_guilds_changed();
        assert!(matches!(next(&mut rx).await, Wake::Item(_)));
        handle.notify_guilds_changed();
        handle.close(1000, "");
        assert!(matches!(next(&mut rx).await, Wake::Closed));
    }

    #[tokio::test]
    async fn an_item_larger_than_the_bound_fits_an_empty_queue() {
        let bounds = QueueBounds {
            items: 10,
            bytes: 1,
        };
        let (handle, _rx) = ConnHandle::new(1, "u1", false, Encoding::Json, bounds, 0);
        assert!(handle.try_send(pong()));
        assert!(!handle.try_send(pong()));
    }

    #[tokio::test]
    async fn closing_is_seen_by_the_flag_and_by_waiters_and_the_first_reason_wins() {
        let bounds = QueueBounds {
            items: 10,
            bytes: 1 << 20,
        };
        let (handle, _rx) = ConnHandle::new(1, "u1", false, Encoding::Json, bounds, 0);
        assert!(!handle.is_closed());
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits while open");
        assert!(handle.close_first(4009, "too slow"));
        assert!(!handle.close_first(1000, "later"));
        assert!(handle.is_closed());
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("the waiter is woken")
            .expect("task");
        tokio::time::timeout(std::time::Duration::from_secs(1), handle.closed())
            .await
            .expect("and a later wait returns at once");
        assert_eq!(handle.close_reason().map(|r| r.code), Some(4009));
    }
}
