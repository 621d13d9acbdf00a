//! The `prev_visible` link of a `CHAT_LOG` record (issue #14 item 5), pure logic. A guild's
//! *visible head* is the seq of its newest entry that is not admin-only; the writer keeps it
//! beside the guild's head ([`super::heads`]) and puts it, as it was before the record, in each
//! record it appends. A writer starting on a guild reads it back from the guild's newest record
//! ([`of_newest`]). A member's history walk ([`walk_record`]) goes from a record straight to the
//! one holding its link, so records of only admin-only entries are never read; a record without
//! the link (written before it existed, or on top of such records) is walked by `prev`, every
//! entry offered, as before.

use super::payload::LogRecord;
use super::records::{entry_seq, record_of};
use crate::bus::history::Below;
use crate::bus::{LogEntry, Visibility};

/// The seq of a guild's newest entry that is not admin-only: `Some(0)` when it has none,
/// `None` when unknown (a writer then writes no link rather than invent one).
pub type VisibleHead = Option<u64>;

/// The visible head once entries (their admin-only flags, oldest first) are stored as the
/// record at `stream_seq` on a guild whose visible head was `before`: the newest of them that is
/// not admin-only, else `before`.
pub fn after_record(
    before: VisibleHead,
    stream_seq: u64,
    admin_only: impl IntoIterator<Item = bool>,
) -> VisibleHead {
    let newest = (admin_only.into_iter().enumerate())
        .filter(|&(_, admin_only)| !admin_only)
        .last();
    newest
        .map(|(index, _)| entry_seq(stream_seq, index))
        .or(before)
}

/// The guild's visible head read back from its newest record, stored at `stream_seq`: that
/// record's newest entry that is not admin-only, else the record's own link (unknown when it
/// has none).
pub fn of_newest(stream_seq: u64, record: &LogRecord) -> VisibleHead {
    let admin_only = record.messages.iter().map(|m| m.admin_only);
    after_record(record.prev_visible, stream_seq, admin_only)
}

/// A record as a history walk holds it: its entries, oldest first, and its link.
#[derive(Debug, Default)]
pub struct WalkedRecord {
    pub entries: Vec<LogEntry>,
    pub prev_visible: VisibleHead,
}

/// How a history walk for `visibility` goes through one record: the entries to offer, newest
/// first, each with what lies below it, and the stream sequence of the record to read next
/// (0: none). A member's walk over a linked record offers only its visible entries (the others
/// are skipped: they are in hand, and not counted against the scan cap) and goes on to the
/// record of the link; any other walk offers every entry and goes on by `prev`.
pub fn walk_record(record: WalkedRecord, visibility: Visibility) -> (Vec<(LogEntry, Below)>, u64) {
    let by_prev = record.entries.first().map_or(0, |e| record_of(e.prev));
    let link = record
        .prev_visible
        .filter(|_| visibility == Visibility::Public);
    let Some(link) = link else {
        let offers = (record.entries.into_iter().rev())
            .map(|entry| {
                let below = Below::any(entry.prev != 0);
                (entry, below)
            })
            .collect();
        return (offers, by_prev);
    };
    let mut visible_below = link != 0;
    let mut offers = Vec::new();
    for entry in record.entries {
        let below = Below {
            any: entry.prev != 0,
            visible: Some(visible_below),
        };
        if visibility.admits(&entry.message) {
            visible_below = true;
            offers.push((entry, below));
        }
    }
    offers.reverse();
    (offers, record_of(link))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::records::entries_of;
    use super::*;
    use crate::bus::INTERNAL_VERSION;
    use crate::protocol::ChatMessage;
    use crate::protocol::identity::{Role, UserInfo};

    fn message(id: &str, admin_only: bool) -> ChatMessage {
        ChatMessage {
            guild_id: "g".into(),
            message_id: id.into(),
            admin_only,
            from: UserInfo::new("u", "U", Role::Admin),
            text: "t".into(),
            ts: String::new(),
        }
    }

    /// A record of `kinds` (oldest first, `a` = admin-only, `p` = public) with a link.
    fn record(prev: u64, prev_visible: VisibleHead, kinds: &str) -> LogRecord {
        LogRecord {
            v: INTERNAL_VERSION,
            prev,
            prev_visible,
            messages: (kinds.chars().enumerate())
                .map(|(i, kind)| Arc::new(message(&format!("m{i}"), kind == 'a')))
                .collect(),
        }
    }

    #[test]
    fn the_visible_head_moves_to_a_records_newest_visible_entry() {
        // visible head before, record stored at stream seq 5 -> visible head after
        let table: [(VisibleHead, &str, VisibleHead); 7] = [
            (Some(0), "p", Some(5120)),
            (Some(0), "a", Some(0)),
            (Some(2048), "aa", Some(2048)),
            (Some(2048), "pap", Some(5122)),
            (Some(2048), "ppa", Some(5121)),
            // unknown stays unknown until a visible entry is stored
            (None, "aaa", None),
            (None, "ap", Some(5121)),
        ];
        for (before, kinds, after) in table {
            let flags = kinds.chars().map(|kind| kind == 'a');
            assert_eq!(
                after_record(before, 5, flags),
                after,
                "{before:?} then {kinds}"
            );
        }
    }

    #[test]
    fn a_writer_reads_the_visible_head_back_from_the_newest_record() {
        // the newest record (its link, its entries), stored at stream seq 9 -> visible head
        let table: [(VisibleHead, &str, VisibleHead); 6] = [
            (Some(0), "a", Some(0)),
            (Some(3072), "aaa", Some(3072)),
            (Some(3072), "apa", Some(9217)),
            // a record without the link: only its own visible entries tell
            (None, "pa", Some(9216)),
            (None, "aa", None),
            (None, "", None),
        ];
        for (prev_visible, kinds, head) in table {
            let newest = record(7168, prev_visible, kinds);
            assert_eq!(of_newest(9, &newest), head, "{prev_visible:?} {kinds}");
        }
    }

    /// Walks the record at stream seq 9 (`prev` 7168): the offered seqs with what is below
    /// each (any older, visible older), and the next record.
    fn walked(
        prev_visible: VisibleHead,
        kinds: &str,
        visibility: Visibility,
    ) -> (Vec<(u64, bool, Option<bool>)>, u64) {
        let linked = record(7168, prev_visible, kinds);
        let record = WalkedRecord {
            prev_visible: linked.prev_visible,
            entries: entries_of(9, linked),
        };
        let (offers, next) = walk_record(record, visibility);
        let offers = (offers.into_iter())
            .map(|(entry, below)| (entry.seq, below.any, below.visible))
            .collect();
        (offers, next)
    }

    #[test]
    fn a_member_walk_follows_the_link_and_an_admin_walk_follows_prev() {
        use Visibility::{All, Public};
        type Row = (
            VisibleHead,
            &'static str,
            Visibility,
            &'static [(u64, bool, Option<bool>)],
            u64,
        );
        let table: [Row; 6] = [
            // link, kinds, reader -> offers (seq, any older, visible older), next record
            (Some(0), "aa", Public, &[], 0),
            (Some(2048), "aa", Public, &[], 2),
            (
                Some(2048),
                "pap",
                Public,
                &[(9218, true, Some(true)), (9216, true, Some(true))],
                2,
            ),
            (Some(0), "ap", Public, &[(9217, true, Some(false))], 0),
            // no link: every entry, by prev
            (
                None,
                "ap",
                Public,
                &[(9217, true, None), (9216, true, None)],
                7,
            ),
            // an admin: every entry, by prev, whatever the link
            (
                Some(0),
                "ap",
                All,
                &[(9217, true, None), (9216, true, None)],
                7,
            ),
        ];
        for (link, kinds, visibility, offers, next) in table {
            assert_eq!(
                walked(link, kinds, visibility),
                (offers.to_vec(), next),
                "{link:?} {kinds} {visibility:?}"
            );
        }
    }
}
