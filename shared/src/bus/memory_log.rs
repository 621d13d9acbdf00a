//! One guild's log in the in-memory bus: its retained entries in seq order, and the positions
//! of the visible ones (not admin-only) in their own ordered index, evicted with the log. An
//! admin's history page is a binary search for `before` then a walk back over every entry; a
//! member's is a binary search in the index then one step per entry it returns (issue #14 item
//! 5), with `more` exactly when a visible older entry is retained.

use std::collections::VecDeque;

use super::history::{self, Below, HistoryPage};
use super::{LogEntry, Visibility};

#[derive(Default)]
pub struct GuildLog {
    entries: VecDeque<LogEntry>,
    last_seq: u64,
    /// Entries evicted so far: the entry at position `p` (counted from the guild's first) is
    /// `entries[p - evicted]`.
    evicted: u64,
    /// The positions of the retained entries that are not admin-only, in order.
    visible: VecDeque<u64>,
}

impl GuildLog {
    /// The retained entries, oldest first.
    pub fn entries(&self) -> &VecDeque<LogEntry> {
        &self.entries
    }

    /// The seq of the guild's newest entry (0 before the first), retained or not.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Appends `entry` (its seq above [`Self::last_seq`]), keeping at most `retain` entries.
    pub fn push(&mut self, entry: LogEntry, retain: usize) {
        self.last_seq = entry.seq;
        if !entry.message.admin_only {
            self.visible
                .push_back(self.evicted + self.entries.len() as u64);
        }
        self.entries.push_back(entry);
        while self.entries.len() > retain && self.entries.pop_front().is_some() {
            self.evicted += 1;
            while self.visible.front().is_some_and(|&p| p < self.evicted) {
                self.visible.pop_front();
            }
        }
    }

    /// The history page below `before` (or from the newest) for `visibility`.
    pub fn page(&self, before: Option<u64>, limit: usize, visibility: Visibility) -> HistoryPage {
        let before = before.unwrap_or(u64::MAX);
        let end = self.entries.partition_point(|e| e.seq < before);
        let mut builder = history::PageBuilder::new(limit, visibility);
        match visibility {
            Visibility::All => self.walk_all(end, &mut builder),
            Visibility::Public => self.walk_visible(end, &mut builder),
        }
        builder.finish()
    }

    /// Offers every entry below index `end`, newest first.
    fn walk_all(&self, end: usize, builder: &mut history::PageBuilder) {
        for i in (0..end).rev() {
            let entry = self.entries[i].clone();
            if builder.offer(entry, Below::any(i > 0)) == history::Walk::Stop {
                break;
            }
        }
    }

    /// Offers the visible entries below index `end`, newest first, from the index.
    fn walk_visible(&self, end: usize, builder: &mut history::PageBuilder) {
        let end = self.evicted + end as u64;
        let below_end = self.visible.partition_point(|&p| p < end);
        for k in (0..below_end).rev() {
            let Some(entry) = self.at(self.visible[k]) else {
                break;
            };
            let below = Below {
                any: k > 0 || self.visible[k] > self.evicted,
                visible: Some(k > 0),
            };
            if builder.offer(entry.clone(), below) == history::Walk::Stop {
                break;
            }
        }
    }

    /// The retained entry at `position`.
    fn at(&self, position: u64) -> Option<&LogEntry> {
        let index = position.checked_sub(self.evicted)?;
        self.entries.get(usize::try_from(index).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::ChatMessage;
    use crate::protocol::identity::{Role, UserInfo};

    /// A log of `kinds` (oldest first, `a` admin-only, `p` public), seqs 1, 2, …, keeping
    /// `retain`.
    fn log(kinds: &str, retain: usize) -> GuildLog {
        let mut log = GuildLog::default();
        for (i, kind) in kinds.chars().enumerate() {
            let seq = i as u64 + 1;
            let message = ChatMessage {
                guild_id: "g".into(),
                message_id: format!("m{seq}"),
                admin_only: kind == 'a',
                from: UserInfo::new("u", "U", Role::Admin),
                text: "t".into(),
                ts: String::new(),
            };
            let entry = LogEntry {
                seq,
                prev: log.last_seq(),
                message: Arc::new(message),
                trace: Default::default(),
            };
            log.push(entry, retain);
        }
        log
    }

    #[test]
    fn pages_for_members_come_from_the_visible_index() {
        use Visibility::{All, Public};
        type Row = (
            &'static str,
            usize,
            Option<u64>,
            usize,
            Visibility,
            &'static [u64],
            bool,
            Option<u64>,
        );
        let table: [Row; 10] = [
            // kinds, retain, before, limit, reader -> seqs, more, next_before
            ("ppp", 10, None, 10, Public, &[3, 2, 1], false, None),
            ("papap", 10, None, 2, Public, &[5, 3], true, Some(3)),
            ("papap", 10, Some(3), 2, Public, &[1], false, None),
            ("papap", 10, Some(4), 10, Public, &[3, 1], false, None),
            ("paaaap", 10, None, 10, Public, &[6, 1], false, None),
            ("aaaaa", 10, None, 10, Public, &[], false, None),
            ("papap", 10, None, 3, All, &[5, 4, 3], true, Some(3)),
            // eviction takes the index with the log: p1 and p3 are gone
            ("papaap", 3, None, 10, Public, &[6], false, None),
            ("papaap", 4, None, 10, Public, &[6, 3], false, None),
            ("papaap", 4, None, 10, All, &[6, 5, 4, 3], false, None),
        ];
        for (kinds, retain, before, limit, vis, seqs, more, next) in table {
            let page = log(kinds, retain).page(before, limit, vis);
            let got: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
            assert_eq!(
                (got, page.more, page.next_before),
                (seqs.to_vec(), more, next),
                "{kinds} retain {retain} before {before:?} limit {limit} {vis:?}"
            );
        }
    }

    #[test]
    fn the_visible_index_is_evicted_with_the_log() {
        for retain in 1..8 {
            let log = log("paappapaap", retain);
            assert_eq!(log.entries().len(), retain);
            let visible: Vec<u64> = (log.visible.iter())
                .filter_map(|&p| log.at(p))
                .map(|e| e.seq)
                .collect();
            let expected: Vec<u64> = (log.entries().iter())
                .filter(|e| !e.message.admin_only)
                .map(|e| e.seq)
                .collect();
            assert_eq!(visible, expected, "retain {retain}");
            assert_eq!(log.visible.len(), expected.len(), "retain {retain}");
        }
    }
}
