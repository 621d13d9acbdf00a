//! The last seq of each guild as this process last saw it, and the order in which appends of
//! one guild may publish. An append takes a [`Ticket`] synchronously, in the order its caller
//! started it (the router starts a guild's appends in arrival order), then does its own slow
//! reads (the messageId claim) concurrently with the appends before it, and only publishes
//! once every earlier ticket of the guild is done ([`Ticket::turn`]). Across processes the
//! `Nats-Expected-Last-Subject-Sequence` check keeps one head per guild.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

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

/// The guild's turn to publish: reads and sets the cached head.
pub struct Turn<'a> {
    ticket: &'a Ticket,
}

impl Turn<'_> {
    pub fn head(&self) -> Head {
        self.ticket.lane.state.lock().head
    }

    pub fn set_head(&self, head: Head) {
        self.ticket.lane.state.lock().head = head;
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

    #[tokio::test]
    async fn turns_come_in_ticket_order_and_a_dropped_ticket_is_skipped() {
        let heads = Arc::new(GuildHeads::default());
        let first = heads.ticket("g");
        let second = heads.ticket("g");
        let third = heads.ticket("g");
        let other = heads.ticket("h");
        let waiter = tokio::spawn(async move {
            let turn = third.turn().await;
            turn.set_head(Some(3));
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
        assert_eq!(fourth.turn().await.head(), Some(3));
    }
}
