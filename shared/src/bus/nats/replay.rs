//! Reading a guild log back. Forward (`read_after`, the resume path) first looks at the
//! guild's newest entry (one direct get answers "nothing new" and "just one new"), else uses a
//! short-lived ephemeral pull consumer filtered to the guild's subject; backward
//! (`read_before`, history pages) follows the `prev` links with direct gets, since JetStream
//! cannot read backwards, at most `bus::history::MAX_SCANNED_PER_PAGE` per request.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetError, DirectGetErrorKind, LastRawMessageErrorKind};
use futures::StreamExt;

use super::NatsBus;
use super::connection::ensure_connected;
use super::errors::unavailable;
use super::payload::{DropKind, LogRecord, decode};
use super::subjects::log_subject;
use crate::bus::{BusError, HistoryPage, LogEntry, Replay, Visibility, history};
use crate::protocol::validate::is_valid_guild_id;

/// Entries fetched per round trip while reading forward.
const FETCH_BATCH: u64 = 256;
/// A replay consumer left behind (its delete failed) goes away after this long idle.
const REPLAY_CONSUMER_IDLE: Duration = Duration::from_secs(30);

impl NatsBus {
    #[tracing::instrument(name = "bus.read_after", skip(self, visibility))]
    pub(super) async fn replay_after(
        &self,
        guild_id: &str,
        after: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Replay, BusError> {
        ensure_connected(&self.client)?;
        if !is_valid_guild_id(guild_id) {
            return Ok(Replay::default());
        }
        // The head from the stream leader, not a direct get: with replicas, any of them answers
        // a direct get, and one still catching up names an older head, which would end the
        // replay early (entries missing from a resume, no error).
        let last = self
            .log
            .get_last_raw_message_by_subject(&log_subject(guild_id))
            .await;
        match last {
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Replay::default());
            }
            Ok(last) if last.sequence <= after => return Ok(Replay::default()),
            Ok(last) => {
                let entry = self.decode_entry(last.sequence, &last.subject, &last.payload);
                if let Some(entry) = entry.filter(|e| e.prev <= after) {
                    return Ok(only_entry(entry, limit, visibility));
                }
            }
            Err(e) => return Err(unavailable("reading the head of a guild log", e)),
        }
        let consumer = self.replay_consumer(guild_id, after).await?;
        let pending = consumer.cached_info().num_pending;
        let replay = if pending == 0 {
            Ok(Replay::default())
        } else {
            self.collect_after(&consumer, pending, after, limit, visibility)
                .await
        };
        self.discard_consumer(consumer.cached_info().name.clone());
        replay
    }

    async fn replay_consumer(&self, guild_id: &str, after: u64) -> Result<PullConsumer, BusError> {
        let config = pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: after.saturating_add(1),
            },
            filter_subject: log_subject(guild_id),
            ack_policy: AckPolicy::None,
            memory_storage: true,
            inactive_threshold: REPLAY_CONSUMER_IDLE,
            ..Default::default()
        };
        self.log
            .create_consumer(config)
            .await
            .map_err(|e| unavailable("creating a replay consumer", e))
    }

    /// Deletes a replay consumer in the background (it also expires on its own).
    fn discard_consumer(&self, name: String) {
        let log = self.log.clone();
        tokio::spawn(async move {
            if let Err(error) = log.delete_consumer(&name).await {
                tracing::debug!(%error, consumer = name, "replay consumer left to expire");
            }
        });
    }

    async fn collect_after(
        &self,
        consumer: &PullConsumer,
        mut pending: u64,
        after: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Replay, BusError> {
        let mut replay = Replay::default();
        let mut first = true;
        while pending > 0 {
            let mut batch = consumer
                .fetch()
                .max_messages(usize::try_from(pending.min(FETCH_BATCH)).unwrap_or(1))
                .messages()
                .await
                .map_err(|e| unavailable("reading a guild log", e))?;
            let mut received = 0;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| unavailable("reading a guild log", e))?;
                received += 1;
                let Some(entry) = self.consumed_entry(&message) else {
                    continue;
                };
                if std::mem::take(&mut first) {
                    replay.gap = entry.prev > after;
                }
                if !visibility.admits(&entry.message) {
                    continue;
                }
                if replay.entries.len() == limit {
                    replay.more = true;
                    return Ok(replay);
                }
                replay.entries.push(entry);
            }
            if received == 0 {
                break;
            }
            pending = pending.saturating_sub(received);
        }
        Ok(replay)
    }

    fn consumed_entry(&self, message: &async_nats::jetstream::Message) -> Option<LogEntry> {
        let seq = message.info().ok()?.stream_sequence;
        self.decode_entry(seq, &message.subject, &message.payload)
    }

    /// Follows `prev` links down from `before`, one direct get per entry, at most
    /// [`history::MAX_SCANNED_PER_PAGE`] of them ([`history::PageBuilder`] decides).
    #[tracing::instrument(name = "bus.read_before", skip(self, visibility))]
    pub(super) async fn replay_before(
        &self,
        guild_id: &str,
        before: Option<u64>,
        limit: usize,
        visibility: Visibility,
    ) -> Result<HistoryPage, BusError> {
        ensure_connected(&self.client)?;
        if !is_valid_guild_id(guild_id) {
            return Ok(HistoryPage::default());
        }
        let mut current = match before {
            None => self.newest_entry(guild_id).await?,
            Some(before) => self.newest_entry_before(guild_id, before).await?,
        };
        let mut builder = history::PageBuilder::new(limit, visibility);
        while let Some(entry) = current {
            let prev = entry.prev;
            if builder.offer(entry, prev != 0) == history::Walk::Stop {
                break;
            }
            current = self.entry_at(guild_id, prev).await?;
        }
        tracing::debug!(scanned = builder.scanned(), "history page read");
        Ok(builder.finish())
    }

    async fn newest_entry(&self, guild_id: &str) -> Result<Option<LogEntry>, BusError> {
        let found = self
            .log
            .direct_get_last_for_subject(log_subject(guild_id))
            .await;
        self.found_entry(found)
    }

    /// The newest entry with seq < `before`: the prev of the first entry at or after `before`,
    /// or the guild's newest entry when there is none.
    async fn newest_entry_before(
        &self,
        guild_id: &str,
        before: u64,
    ) -> Result<Option<LogEntry>, BusError> {
        let at_or_after = self
            .log
            .direct_get_next_for_subject(log_subject(guild_id), Some(before))
            .await;
        match self.found_entry(at_or_after)? {
            Some(next) => self.entry_at(guild_id, next.prev).await,
            None => self.newest_entry(guild_id).await,
        }
    }

    /// The guild's entry at `seq`; `None` at 0, or when it is no longer retained.
    async fn entry_at(&self, guild_id: &str, seq: u64) -> Result<Option<LogEntry>, BusError> {
        if seq == 0 {
            return Ok(None);
        }
        let entry = self.found_entry(self.log.direct_get(seq).await)?;
        Ok(entry.filter(|e| e.message.guild_id == guild_id))
    }

    fn found_entry(
        &self,
        found: Result<StreamMessage, DirectGetError>,
    ) -> Result<Option<LogEntry>, BusError> {
        match found {
            Ok(message) => {
                Ok(self.decode_entry(message.sequence, &message.subject, &message.payload))
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(direct_get_error(e)),
        }
    }

    /// A stored record as an entry; one that does not decode is logged, counted and skipped.
    fn decode_entry(&self, seq: u64, subject: &str, payload: &[u8]) -> Option<LogEntry> {
        match decode::<LogRecord>(payload) {
            Ok(record) => Some(LogEntry {
                seq,
                prev: record.prev,
                message: record.message,
                trace: Default::default(),
            }),
            Err(error) => {
                self.drops.record(DropKind::Log, subject, &error);
                None
            }
        }
    }
}

fn direct_get_error(error: DirectGetError) -> BusError {
    if error.kind() == DirectGetErrorKind::TimedOut {
        BusError::Timeout
    } else {
        unavailable("reading a guild log", error)
    }
}

/// The replay when the guild's newest entry is the only one after the position.
fn only_entry(entry: LogEntry, limit: usize, visibility: Visibility) -> Replay {
    let visible = visibility.admits(&entry.message);
    Replay {
        more: visible && limit == 0,
        entries: if visible && limit > 0 {
            vec![entry]
        } else {
            Vec::new()
        },
        gap: false,
    }
}
