//! A connection's outbound queue: many producers (hub feeds, replays, fetches, the reader),
//! one consumer (the transport's writer), bounded in items. Unlike a tokio `mpsc` channel,
//! which allocates its first block of slots when it is created, an empty queue holds no
//! allocation: the consumer gives the buffer back once it has drained it
//! ([`Queue::shrink_if_empty`]), so an idle connection keeps only the queue's few words.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The shared state of one queue.
#[derive(Debug)]
pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    max_items: usize,
    /// Wakes the consumer; a push with nobody waiting leaves a permit.
    ready: Notify,
}

impl<T> Queue<T> {
    /// An empty queue of at most `max_items` (at least 1); allocates nothing yet.
    pub fn new(max_items: usize) -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            max_items: max_items.max(1),
            ready: Notify::new(),
        }
    }

    /// Appends `item` unless the queue is full (then hands it back).
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut items = self.items.lock();
        if items.len() >= self.max_items {
            return Err(item);
        }
        items.push_back(item);
        drop(items);
        self.ready.notify_one();
        Ok(())
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.items.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A wait for the next push (or [`Queue::wake`]); enable it before looking at the queue.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.ready.notified()
    }

    /// Wakes the consumer without a push (it looks again at whatever else it waits for).
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// The next item if one is queued.
    pub fn pop(&self) -> Option<T> {
        self.items.lock().pop_front()
    }

    /// Gives the buffer back when the queue is empty (the consumer calls it when idle).
    pub fn shrink_if_empty(&self) {
        let mut items = self.items.lock();
        if items.is_empty() && items.capacity() > 0 {
            *items = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_items_and_fifo() {
        let queue = Queue::new(2);
        assert_eq!(queue.push(1), Ok(()));
        assert_eq!(queue.push(2), Ok(()));
        assert_eq!(queue.push(3), Err(3), "full at two items");
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.push(3), Ok(()));
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop(), Some(3));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn an_empty_queue_holds_no_buffer() {
        let queue = Queue::new(8);
        assert_eq!(
            queue.items.lock().capacity(),
            0,
            "nothing allocated at creation"
        );
        for i in 0..5 {
            assert_eq!(queue.push(i), Ok(()));
        }
        queue.shrink_if_empty();
        assert!(queue.items.lock().capacity() > 0, "kept while items wait");
        while queue.pop().is_some() {}
        queue.shrink_if_empty();
        assert_eq!(queue.items.lock().capacity(), 0, "given back once drained");
    }
}
