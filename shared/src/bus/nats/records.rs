//! How entries map onto `CHAT_LOG` records (pure logic, no I/O). A record is one JetStream
//! message holding one or more consecutive entries of one guild (the router's group commit:
//! every send of a guild queued while the previous append was in flight goes into the next
//! record). Entry `i` of the record stored at stream sequence `s` has
//! `seq = s * RECORD_SPAN + i`: it strictly increases within a guild (the contract does not ask
//! for contiguous seqs), and the record of any seq is `seq / RECORD_SPAN`, so resume and history
//! start reading at the right record with no index. The record carries the `prev` of its first
//! entry (the guild's head when it was appended); each later entry's `prev` is the one before it.

use std::sync::Arc;

use super::payload::LogRecord;
use crate::bus::LogEntry;
use crate::protocol::ChatMessage;

/// Seqs reserved per record: the most entries one record can hold.
pub const RECORD_SPAN: u64 = 1024;
/// The most entries the bus puts in one record (well under [`RECORD_SPAN`]; also bounds the
/// record's size: 256 messages of 2,000 characters stay under NATS's 1 MiB payload default).
pub const MAX_RECORD_ENTRIES: usize = 256;

/// The seq of entry `index` of the record at stream sequence `stream_seq`.
pub fn entry_seq(stream_seq: u64, index: usize) -> u64 {
    stream_seq
        .saturating_mul(RECORD_SPAN)
        .saturating_add(index as u64)
}

/// The stream sequence of the record holding `seq` (0 for seq 0: no record).
pub fn record_of(seq: u64) -> u64 {
    seq / RECORD_SPAN
}

/// The entries of a stored record, oldest first.
pub fn entries_of(stream_seq: u64, record: LogRecord) -> Vec<LogEntry> {
    let mut prev = record.prev;
    record
        .messages
        .into_iter()
        .take(RECORD_SPAN as usize)
        .enumerate()
        .map(|(index, message)| {
            let seq = entry_seq(stream_seq, index);
            let entry = LogEntry {
                seq,
                prev,
                message,
                trace: Default::default(),
            };
            prev = seq;
            entry
        })
        .collect()
}

/// The seq of the last entry of a stored record (the guild's head when it is the newest).
pub fn last_seq(stream_seq: u64, record: &LogRecord) -> u64 {
    entry_seq(stream_seq, record.messages.len().saturating_sub(1))
}

/// The index of the entry with `message_id` in a record, if it holds one.
pub fn index_of(messages: &[Arc<ChatMessage>], message_id: &str) -> Option<usize> {
    messages.iter().position(|m| m.message_id == message_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::INTERNAL_VERSION;
    use crate::protocol::identity::{Role, UserInfo};

    fn record(prev: u64, ids: &[&str]) -> LogRecord {
        let messages = ids
            .iter()
            .map(|id| {
                Arc::new(ChatMessage {
                    guild_id: "g".into(),
                    message_id: (*id).into(),
                    admin_only: false,
                    from: UserInfo::new("u", "U", Role::Member),
                    text: "t".into(),
                    ts: String::new(),
                })
            })
            .collect();
        LogRecord {
            v: INTERNAL_VERSION,
            prev,
            prev_visible: None,
            messages,
        }
    }

    #[test]
    fn entries_are_linked_and_map_back_to_their_record() {
        // (stream seq, prev, ids, the entries' (seq, prev))
        type Case<'a> = (u64, u64, &'a [&'a str], &'a [(u64, u64)]);
        let cases: &[Case] = &[
            (1, 0, &["a"], &[(1024, 0)]),
            (
                7,
                1024,
                &["a", "b", "c"],
                &[(7168, 1024), (7169, 7168), (7170, 7169)],
            ),
        ];
        for (stream_seq, prev, ids, want) in cases {
            let entries = entries_of(*stream_seq, record(*prev, ids));
            let got: Vec<(u64, u64)> = entries.iter().map(|e| (e.seq, e.prev)).collect();
            assert_eq!(&got, want, "record {stream_seq}");
            for entry in &entries {
                assert_eq!(record_of(entry.seq), *stream_seq);
            }
            let last = last_seq(*stream_seq, &record(*prev, ids));
            assert_eq!(Some(last), entries.last().map(|e| e.seq));
        }
        assert_eq!(record_of(0), 0);
        assert_eq!(record_of(1023), 0);
    }

    #[test]
    fn seqs_increase_across_records_whatever_their_size() {
        let small = entry_seq(5, MAX_RECORD_ENTRIES - 1);
        let next = entry_seq(6, 0);
        assert!(small < next);
        assert!(entry_seq(u64::MAX, 3) == u64::MAX);
    }

    #[test]
    fn finding_an_id_in_a_record() {
        let r = record(0, &["a", "b"]);
        assert_eq!(index_of(&r.messages, "b"), Some(1));
        assert_eq!(index_of(&r.messages, "z"), None);
    }
}
