//! What a guild's writer reads when it starts (or starts again, after an error) on a guild:
//! the guild's head and visible head (from its newest record, [`super::links::of_newest`]),
//! and the ids of its newest records, remembered in [`super::recent_ids`]. A writer that
//! stopped may have stored records whose claims it never wrote (it died between the store and
//! the claim, or before the ack came back); those are the guild's newest records, so a resend
//! of one of their messages is still answered as a duplicate by the next writer.

use async_nats::jetstream::stream::LastRawMessageErrorKind;

use super::NatsBus;
use super::errors::unavailable;
use super::heads::Turn;
use super::links::{self, VisibleHead};
use super::records::{entry_seq, last_seq, record_of};
use super::subjects::log_subject;
use crate::bus::BusError;

/// Newest records of a guild read when its writer starts on it.
const TAIL_RECORDS: usize = 8;

impl NatsBus {
    /// The seq of the guild's newest entry (0 when it has none) and its visible head, from the
    /// stream leader; the ids of up to [`TAIL_RECORDS`] newest records are remembered on the
    /// way.
    pub(super) async fn remember_tail(
        &self,
        turn: &Turn<'_>,
        guild_id: &str,
    ) -> Result<(u64, VisibleHead), BusError> {
        let last = self
            .log
            .get_last_raw_message_by_subject(&log_subject(guild_id))
            .await;
        let (mut stream_seq, mut record) = match last {
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok((0, Some(0)));
            }
            Err(e) => return Err(unavailable("reading the head of a guild log", e)),
            Ok(last) => match self.decode_record(&last.subject, &last.payload) {
                Some(record) => (last.sequence, record),
                // Undecodable (counted): the next entry links to the record's first seq, and
                // what it held is unknown.
                None => return Ok((entry_seq(last.sequence, 0), None)),
            },
        };
        let head = last_seq(stream_seq, &record);
        let visible = links::of_newest(stream_seq, &record);
        let newest = stream_seq;
        let mut read = 0;
        for _ in 0..TAIL_RECORDS {
            read += 1;
            for (index, message) in record.messages.iter().enumerate() {
                let seq = entry_seq(stream_seq, index);
                turn.remember(&message.message_id, &message.from.id, seq);
            }
            let older = record_of(record.prev);
            if older == 0 {
                break;
            }
            match self.log.direct_get(older).await {
                Ok(found) => match self.decode_record(&found.subject, &found.payload) {
                    Some(found_record) if found.subject.as_str() == log_subject(guild_id) => {
                        (stream_seq, record) = (older, found_record);
                    }
                    _ => break,
                },
                Err(error) => {
                    tracing::debug!(%error, older, "stopped reading a guild's newest records");
                    break;
                }
            }
        }
        tracing::debug!(
            guild_id,
            head,
            newest,
            oldest = stream_seq,
            read,
            "read a guild's head"
        );
        Ok((head, visible))
    }
}
