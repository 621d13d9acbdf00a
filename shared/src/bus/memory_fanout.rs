//! The in-memory buses' fan-out of one topic to its subscribers: a bounded queue per
//! subscriber that takes memory as it fills (tokio's mpsc allocates 32 slots at a time), where
//! tokio's broadcast allocates every slot of every channel up front (4096 slots: 128 KiB per
//! topic, idle or not; 2.6 KiB per connection at 100 connections a guild).
//!
//! Lag behaves as a lagged broadcast receiver's does: a subscriber whose queue is full misses
//! what is published meanwhile, except the newest item, which waits beside the queue (each
//! newer one replaces it) and comes right after the queue's last. So the subscriber always
//! ends at the newest item, and sees what it missed as a gap by `seq`/`prev`. A subscriber
//! that is gone is dropped on the next publish.

use std::sync::Arc;

use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

/// The newest item of a subscriber whose queue was full, and the wake-up for it.
struct Overflow<T> {
    latest: Mutex<Option<T>>,
    parked: Notify,
}

/// One subscriber's end on the publishing side.
struct Subscriber<T> {
    queue: mpsc::Sender<T>,
    overflow: Arc<Overflow<T>>,
}

/// The subscribers of one topic.
pub struct Fanout<T> {
    capacity: usize,
    subscribers: Vec<Subscriber<T>>,
}

impl<T: Clone + Send + 'static> Fanout<T> {
    /// A topic whose subscribers may each fall `capacity` items behind before they miss some.
    pub fn new(capacity: usize) -> Self {
        Fanout {
            capacity: capacity.max(1),
            subscribers: Vec::new(),
        }
    }

    /// A new subscriber: everything published from now on, in order (gaps when it lags).
    /// Subscribers gone are dropped here too, so a quiet topic subscribed again and again
    /// does not keep every old queue until something is published.
    pub fn subscribe(&mut self) -> impl Stream<Item = T> + Send + 'static {
        self.subscribers
            .retain(|subscriber| !subscriber.queue.is_closed());
        let (queue, receiver) = mpsc::channel(self.capacity);
        let overflow = Arc::new(Overflow {
            latest: Mutex::new(None),
            parked: Notify::new(),
        });
        self.subscribers.push(Subscriber {
            queue,
            overflow: overflow.clone(),
        });
        futures::stream::unfold(
            (receiver, overflow),
            |(mut receiver, overflow)| async move {
                let item = next(&mut receiver, &overflow).await?;
                Some((item, (receiver, overflow)))
            },
        )
    }

    /// Offers `item` to every subscriber; false when none is left (the topic may be dropped).
    pub fn publish(&mut self, item: &T) -> bool {
        self.subscribers
            .retain(|subscriber| offer(subscriber, item));
        !self.subscribers.is_empty()
    }
}

/// Queues `item` for one subscriber, or parks it as the newest when its queue is full (or
/// something is parked already: then it would come before what waits in the queue); false
/// when the subscriber is gone.
fn offer<T: Clone>(subscriber: &Subscriber<T>, item: &T) -> bool {
    if subscriber.queue.is_closed() {
        return false;
    }
    let mut latest = subscriber.overflow.latest.lock();
    if latest.is_none() {
        match subscriber.queue.try_send(item.clone()) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(_)) => {}
        }
    }
    *latest = Some(item.clone());
    drop(latest);
    subscriber.overflow.parked.notify_one();
    true
}

/// A subscriber's next item: its queue's, then the parked newest one; `None` once the topic
/// is gone and both are empty.
async fn next<T>(receiver: &mut mpsc::Receiver<T>, overflow: &Overflow<T>) -> Option<T> {
    loop {
        match receiver.try_recv() {
            Ok(item) => return Some(item),
            Err(mpsc::error::TryRecvError::Disconnected) => return overflow.latest.lock().take(),
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if let Some(item) = overflow.latest.lock().take() {
            return Some(item);
        }
        tokio::select! {
            item = receiver.recv() => return item.or_else(|| overflow.latest.lock().take()),
            () = overflow.parked.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn take(stream: &mut (impl Stream<Item = u32> + Unpin), n: usize) -> Vec<u32> {
        let mut got = Vec::new();
        for _ in 0..n {
            let item = tokio::time::timeout(std::time::Duration::from_secs(2), stream.next());
            got.push(item.await.expect("in time").expect("an item"));
        }
        got
    }

    #[tokio::test]
    async fn a_subscriber_gets_each_item_in_order_and_a_laggard_ends_at_the_newest() {
        // (capacity, items published before reading, what the subscriber reads)
        let cases: [(usize, u32, &[u32]); 4] = [
            (4, 3, &[1, 2, 3]),
            (4, 4, &[1, 2, 3, 4]),
            (4, 5, &[1, 2, 3, 4, 5]),
            (2, 9, &[1, 2, 9]),
        ];
        for (capacity, published, expected) in cases {
            let mut fanout = Fanout::new(capacity);
            let mut stream = Box::pin(fanout.subscribe());
            for item in 1..=published {
                assert!(fanout.publish(&item));
            }
            assert_eq!(
                take(&mut stream, expected.len()).await,
                expected,
                "{capacity} {published}"
            );
            // Once caught up, new items queue again, after the parked one.
            fanout.publish(&100);
            fanout.publish(&101);
            assert_eq!(take(&mut stream, 2).await, [100, 101]);
        }
    }

    #[tokio::test]
    async fn a_waiting_subscriber_is_woken_by_a_parked_item_and_gone_ones_are_dropped() {
        let mut fanout = Fanout::new(1);
        let mut a = Box::pin(fanout.subscribe());
        let b = fanout.subscribe();
        fanout.publish(&1);
        assert_eq!(take(&mut a, 1).await, [1]);
        let waiting = tokio::spawn(async move { take(&mut a, 2).await });
        tokio::task::yield_now().await;
        fanout.publish(&2);
        fanout.publish(&3);
        assert_eq!(waiting.await.expect("reader"), [2, 3]);
        drop(b);
        assert!(!fanout.publish(&4), "both subscribers are gone");
    }

    #[test]
    fn a_quiet_topic_keeps_only_the_subscribers_still_there() {
        let mut fanout = Fanout::<u32>::new(4);
        let kept = fanout.subscribe();
        for _ in 0..100 {
            drop(fanout.subscribe());
        }
        assert_eq!(fanout.subscribers.len(), 2, "the one kept and the newest");
        drop(kept);
    }
}
