//! The last seq of each guild as this process last saw it, and the order in which appends of
//! one guild may publish. An append takes a [`Ticket`] synchronously, in the order its caller
//! started it (the router starts a guild's appends in arrival order), then does its own slow
//! reads (the messageId claim) concurrently with the appends before it, and only publishes
//! once every earlier ticket of the guild is done ([`Ticket::turn`]). Across processes the
//! `Nats-Expected-Last-Subject-Sequence` check keeps one head per guild. Beside the head the
//! turn keeps the guild's visible head ([`super::links`]), set and forgotten with it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::links::{self, VisibleHead};
use super::recent_ids::{RecentIds, Stored};

/// The cached head of one guild (the seq of its newest entry): `None` until read from the
/// stream.
pub type Head = Option<u64>;

#[derive(Default)]
pub struct GuildHeads {
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
}

impl GuildHeads {
    /// A place in the guild's order, taken now (no await).
    pub fn ticket(&self, guild_id: &str) -> Ticket {
        let lane = self
            .lanes
            .lock()
            .entry(guild_id.to_owned())
            .or_default()
            .clone();
        let number = {
            let mut state = lane.state.lock();
            state.issued += 1;
            state.issued
        };
        Ticket { lane, number }
    }
}

/// One guild's order of appends.
#[derive(Default)]
struct Lane {
    state: Mutex<LaneState>,
    turns: Notify,
}

#[derive(Default)]
struct LaneState {
    /// Tickets handed out so far (the last one's number).
    issued: u64,
    /// Tickets done so far, in order (every ticket ≤ this is done).
    done: u64,
    /// Tickets given up out of order, skipped when their turn comes.
    abandoned: BTreeSet<u64>,
    head: Head,
    /// Known only with `head` (unknown when the stream did not tell).
    visible: VisibleHead,
    recent: RecentIds,
}

impl LaneState {
    fn finish(&mut self, number: u64) {
        if number == self.done + 1 {
            self.done = number;
            while self.abandoned.remove(&(self.done + 1)) {
                self.done += 1;
            }
        } else if number > self.done {
            self.abandoned.insert(number);
        }
    }

    fn set_head(&mut self, head: Head, visible: VisibleHead) {
        self.head = head;
        self.visible = visible.filter(|_| head.is_some());
    }

    /// The record at `stream_seq` whose entries have these admin-only flags (oldest first) was
    /// stored on the cached head; `head` is its last entry.
    fn stored(&mut self, stream_seq: u64, head: u64, admin_only: impl IntoIterator<Item = bool>) {
        self.visible = links::after_record(self.visible, stream_seq, admin_only);
        self.head = Some(head);
    }
}

/// A place in a guild's order of appends. Dropping it (done, refused before publishing, or
/// cancelled) lets the next one go.
pub struct Ticket {
    lane: Arc<Lane>,
    number: u64,
}

impl Ticket {
    /// Waits until every earlier ticket of the guild is done; the turn holds the guild head.
    pub async fn turn(&self) -> Turn<'_> {
        loop {
            let notified = self.lane.turns.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lane.state.lock().done + 1 == self.number {
                return Turn { ticket: self };
            }
            notified.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.lane.state.lock().finish(self.number);
        self.lane.turns.notify_waiters();
    }
}

/// The guild's turn to publish: reads and sets the cached head and visible head.
pub struct Turn<'a> {
    ticket: &'a Ticket,
}

impl Turn<'_> {
    pub fn head(&self) -> Head {
        self.ticket.lane.state.lock().head
    }

    /// The guild's visible head, as cached with the head (`None` while the head is unknown).
    pub fn visible_head(&self) -> VisibleHead {
        self.ticket.lane.state.lock().visible
    }

    /// Sets both, as read from the stream.
    pub fn set_head(&self, head: u64, visible: VisibleHead) {
        self.ticket.lane.state.lock().set_head(Some(head), visible);
    }

    /// Forgets both (the head moved under us, or an error): the next append reads them again.
    pub fn forget_head(&self) {
        self.ticket.lane.state.lock().set_head(None, None);
    }

    /// A record was stored at `stream_seq` on the cached head: `head` is its last entry, and
    /// the visible head moves to its newest entry that is not admin-only, if any.
    pub fn stored(&self, stream_seq: u64, head: u64, admin_only: impl IntoIterator<Item = bool>) {
        (self.ticket.lane.state.lock()).stored(stream_seq, head, admin_only);
    }

    /// Who stored `message_id` in this guild recently, if this process knows.
    pub fn remembered(&self, message_id: &str) -> Option<Stored> {
        self.ticket
            .lane
            .state
            .lock()
            .recent
            .get(message_id)
            .cloned()
    }

    /// Remembers that `owner` stored `message_id` at `seq` in this guild.
    pub fn remember(&self, message_id: &str, owner: &str, seq: u64) {
        (self.ticket.lane.state.lock().recent).insert(message_id, owner, seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn finishing_out_of_order_waits_for_the_gap() {
        let cases: &[(&[u64], u64)] = &[
            (&[1, 2, 3], 3),
            (&[2, 3], 0),
            (&[2, 3, 1], 3),
            (&[3, 1], 1),
            (&[3, 1, 2], 3),
        ];
        for (order, done) in cases {
            let mut state = LaneState::default();
            for n in *order {
                state.finish(*n);
            }
            assert_eq!(state.done, *done, "{order:?}");
        }
    }

    /// What a lane's head and visible head become through the writer's steps.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Read from the stream: head, visible head.
        Read(u64, VisibleHead),
        /// Stored at a stream seq: kinds oldest first (`a` admin-only, `p` public).
        Stored(u64, &'static str),
        Forget,
    }

    #[test]
    fn the_visible_head_is_kept_with_the_head() {
        use Step::*;
        let table: &[(&[Step], Head, VisibleHead)] = &[
            (&[], None, None),
            (&[Read(0, Some(0))], Some(0), Some(0)),
            (&[Read(0, Some(0)), Stored(1, "a")], Some(1024), Some(0)),
            (&[Read(0, Some(0)), Stored(1, "pa")], Some(1025), Some(1024)),
            (
                &[Read(0, Some(0)), Stored(1, "p"), Stored(2, "aa")],
                Some(2049),
                Some(1024),
            ),
            // unknown (the stream's newest record had no link): known from the first visible
            (&[Read(5120, None), Stored(6, "a")], Some(6144), None),
            (
                &[Read(5120, None), Stored(6, "a"), Stored(7, "ap")],
                Some(7169),
                Some(7169),
            ),
            // forgotten together, read again together
            (&[Read(0, Some(0)), Stored(1, "p"), Forget], None, None),
            (
                &[Read(0, Some(0)), Forget, Read(3072, Some(2048))],
                Some(3072),
                Some(2048),
            ),
        ];
        for (steps, head, visible) in table {
            let mut state = LaneState::default();
            for step in *steps {
                match *step {
                    Read(head, visible) => state.set_head(Some(head), visible),
                    Stored(stream_seq, kinds) => {
                        let last = super::super::records::entry_seq(stream_seq, kinds.len() - 1);
                        state.stored(stream_seq, last, kinds.chars().map(|k| k == 'a'));
                    }
                    Forget => state.set_head(None, None),
                }
            }
            assert_eq!((state.head, state.visible), (*head, *visible), "{steps:?}");
        }
    }

    #[tokio::test]
    async fn turns_come_in_ticket_order_and_a_dropped_ticket_is_skipped() {
        let heads = Arc::new(GuildHeads::default());
        let first = heads.ticket("g");
        let second = heads.ticket("g");
        let third = heads.ticket("g");
        let other = heads.ticket("h");
        let waiter = tokio::spawn(async move {
            let turn = third.turn().await;
            turn.set_head(3, Some(2));
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(second);
        drop(other);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(first);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("third got its turn")
            .expect("no panic");
        let fourth = heads.ticket("g");
        let turn = fourth.turn().await;
        assert_eq!((turn.head(), turn.visible_head()), (Some(3), Some(2)));
    }
}
