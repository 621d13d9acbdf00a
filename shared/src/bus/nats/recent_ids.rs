//! The messageIds a guild's writer stored most recently, with their sender and seq (pure,
//! bounded). A record holds several messages, so JetStream's `Nats-Msg-Id` cannot deduplicate
//! each of them, and a message's durable claim (`claims.rs`) is written just after its record
//! is stored: this memory answers a resend that comes in between. It is filled from every
//! record this process stores and, when a writer (re)starts on a guild, from the guild's
//! newest records (see `log.rs`), which covers what a writer that stopped stored without
//! writing its claims.

use std::collections::{HashMap, VecDeque};

/// Ids remembered per guild: more than one writer can have in flight when it stops.
pub const RECENT_IDS_PER_GUILD: usize = 1024;

/// Who stored a messageId, and at which seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub owner: String,
    pub seq: u64,
}

#[derive(Debug, Default)]
pub struct RecentIds {
    by_id: HashMap<String, Stored>,
    order: VecDeque<String>,
}

impl RecentIds {
    pub fn get(&self, message_id: &str) -> Option<&Stored> {
        self.by_id.get(message_id)
    }

    /// Remembers an id (the first store wins), forgetting the oldest beyond the bound.
    pub fn insert(&mut self, message_id: &str, owner: &str, seq: u64) {
        if self.by_id.contains_key(message_id) {
            return;
        }
        self.by_id.insert(
            message_id.to_owned(),
            Stored {
                owner: owner.to_owned(),
                seq,
            },
        );
        self.order.push_back(message_id.to_owned());
        while self.order.len() > RECENT_IDS_PER_GUILD {
            if let Some(oldest) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_store_wins_and_the_oldest_go() {
        let mut recent = RecentIds::default();
        recent.insert("a", "u1", 5);
        recent.insert("a", "u2", 9);
        assert_eq!(
            recent.get("a"),
            Some(&Stored {
                owner: "u1".into(),
                seq: 5
            })
        );
        for n in 0..RECENT_IDS_PER_GUILD {
            recent.insert(&format!("x{n}"), "u", n as u64);
        }
        assert_eq!(recent.get("a"), None);
        assert!(recent.get("x0").is_some());
        assert_eq!(recent.by_id.len(), RECENT_IDS_PER_GUILD);
    }
}
