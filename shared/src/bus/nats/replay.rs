//! Reading a guild log back, record by record ([`super::records`]). Forward (`read_after`, the
//! resume path) first looks at the guild's newest record (one read answers "nothing new" and
//! "only the newest record is new"), else reads from the record holding the position with
//! batch direct gets filtered to the guild's subject ([`super::direct_batch`], no consumer;
//! a short-lived ephemeral pull consumer when a replica behind the leader answers); backward (`read_before`,
//! history pages) follows links between records with direct gets, since JetStream cannot read
//! backwards: a member's walk follows each record's `prev_visible` ([`super::links`]), so it
//! reads only records holding entries it sees; an admin's walk, and a member's over records
//! without that link, follow `prev`, scanning at most `bus::history::MAX_SCANNED_PER_PAGE`
//! entries per request.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetError, DirectGetErrorKind, LastRawMessageErrorKind};
use futures::StreamExt;

use super::NatsBus;
use super::connection::ensure_connected;
use super::direct_batch::batch_get;
use super::errors::unavailable;
use super::links::{WalkedRecord, walk_record};
use super::payload::{DropKind, LogRecord, decode};
use super::records::{entries_of, record_of};
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
        let head = match last {
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Replay::default());
            }
            Ok(last) if last.sequence < record_of(after) => return Ok(Replay::default()),
            Ok(last) => {
                let entries = self.decode_entries(last.sequence, &last.subject, &last.payload);
                if entries.last().is_some_and(|e| e.seq <= after) {
                    return Ok(Replay::default());
                }
                if entries.first().is_some_and(|e| e.prev <= after) {
                    return Ok(newest_only(entries, after, limit, visibility));
                }
                last.sequence
            }
            Err(e) => return Err(unavailable("reading the head of a guild log", e)),
        };
        let mut forward = Forward::new(after, limit, visibility);
        if self.read_forward(guild_id, head, &mut forward).await? {
            return Ok(forward.replay);
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

    /// Reads the guild's records from the one holding the position up to `head` (the
    /// leader's newest) with batch direct gets, no consumer. `false` when a batch came back
    /// empty before `head`: a replica behind the leader answered, and the caller reads with a
    /// consumer instead, from the start with a page of its own.
    async fn read_forward(
        &self,
        guild_id: &str,
        head: u64,
        forward: &mut Forward,
    ) -> Result<bool, BusError> {
        let stream = self.log.cached_info().config.name.clone();
        let subject = log_subject(guild_id);
        let mut start = record_of(forward.after).max(1);
        loop {
            let request = serde_json::json!({
                "seq": start, "next_by_subj": subject, "batch": FETCH_BATCH,
            });
            let found = batch_get(&self.client, &stream, request, "reading a guild log").await?;
            let Some(last) = found.last().map(|f| f.seq) else {
                return Ok(false);
            };
            for record in &found {
                let entries = self.decode_entries(record.seq, &record.subject, &record.payload);
                if forward.offer(entries) {
                    return Ok(true);
                }
            }
            if last >= head {
                return Ok(true);
            }
            start = last + 1;
        }
    }

    async fn replay_consumer(&self, guild_id: &str, after: u64) -> Result<PullConsumer, BusError> {
        let config = pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: record_of(after).max(1),
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
        let mut forward = Forward::new(after, limit, visibility);
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
                if forward.offer(self.consumed_entries(&message)) {
                    return Ok(forward.replay);
                }
            }
            if received == 0 {
                break;
            }
            pending = pending.saturating_sub(received);
        }
        Ok(forward.replay)
    }

    fn consumed_entries(&self, message: &async_nats::jetstream::Message) -> Vec<LogEntry> {
        match message.info() {
            Ok(info) => {
                self.decode_entries(info.stream_sequence, &message.subject, &message.payload)
            }
            Err(_) => Vec::new(),
        }
    }

    /// Follows the records' links down from `before`, one direct get per record
    /// ([`walk_record`] says which entries to offer and which record is next;
    /// [`history::PageBuilder`] decides when the page is done).
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
            None => self.newest_record(guild_id).await?,
            Some(before) => self.record_at_or_after(guild_id, record_of(before)).await?,
        };
        let mut builder = history::PageBuilder::new(limit, visibility);
        'walk: while let Some(record) = current.take() {
            let (offers, older) = walk_record(record, visibility);
            for (entry, below) in offers {
                if before.is_some_and(|before| entry.seq >= before) {
                    continue;
                }
                if builder.offer(entry, below) == history::Walk::Stop {
                    break 'walk;
                }
            }
            current = self.record_at(guild_id, older).await?;
        }
        tracing::debug!(scanned = builder.scanned(), "history page read");
        Ok(builder.finish())
    }

    /// The guild's newest record.
    async fn newest_record(&self, guild_id: &str) -> Result<Option<WalkedRecord>, BusError> {
        let found = self
            .log
            .direct_get_last_for_subject(log_subject(guild_id))
            .await;
        self.found_record(found)
    }

    /// The guild's first record at or after stream sequence `stream_seq`, or its newest record
    /// when there is none.
    async fn record_at_or_after(
        &self,
        guild_id: &str,
        stream_seq: u64,
    ) -> Result<Option<WalkedRecord>, BusError> {
        let found = self
            .log
            .direct_get_next_for_subject(log_subject(guild_id), Some(stream_seq.max(1)))
            .await;
        match self.found_record(found)? {
            Some(record) => Ok(Some(record)),
            None => self.newest_record(guild_id).await,
        }
    }

    /// The guild's record at `stream_seq`; `None` at 0, or when it is no longer retained.
    async fn record_at(
        &self,
        guild_id: &str,
        stream_seq: u64,
    ) -> Result<Option<WalkedRecord>, BusError> {
        if stream_seq == 0 {
            return Ok(None);
        }
        let record = self.found_record(self.log.direct_get(stream_seq).await)?;
        Ok(record.filter(|r| (r.entries.first()).is_some_and(|e| e.message.guild_id == guild_id)))
    }

    /// A record found by a direct get, with entries (one that does not decode has none).
    fn found_record(
        &self,
        found: Result<StreamMessage, DirectGetError>,
    ) -> Result<Option<WalkedRecord>, BusError> {
        match found {
            Ok(message) => {
                let record = self.decode_record(&message.subject, &message.payload);
                Ok(record
                    .map(|record| WalkedRecord {
                        prev_visible: record.prev_visible,
                        entries: entries_of(message.sequence, record),
                    })
                    .filter(|record| !record.entries.is_empty()))
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(direct_get_error(e)),
        }
    }

    /// A stored record's entries; one that does not decode is logged, counted and skipped.
    fn decode_entries(&self, stream_seq: u64, subject: &str, payload: &[u8]) -> Vec<LogEntry> {
        self.decode_record(subject, payload)
            .map(|record| entries_of(stream_seq, record))
            .unwrap_or_default()
    }

    /// A stored record; one that does not decode is logged, counted and `None`.
    pub(super) fn decode_record(&self, subject: &str, payload: &[u8]) -> Option<LogRecord> {
        match decode::<LogRecord>(payload) {
            Ok(record) => Some(record),
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

/// The replay when only the guild's newest record has entries after the position.
fn newest_only(entries: Vec<LogEntry>, after: u64, limit: usize, visibility: Visibility) -> Replay {
    let mut visible = entries
        .into_iter()
        .filter(|e| e.seq > after && visibility.admits(&e.message));
    let page: Vec<LogEntry> = visible.by_ref().take(limit).collect();
    Replay {
        more: visible.next().is_some(),
        entries: page,
        gap: false,
    }
}

/// A forward read's page so far: entries after `after` that `visibility` admits, at most
/// `limit`, and whether the first one read left a gap.
struct Forward {
    after: u64,
    limit: usize,
    visibility: Visibility,
    first: bool,
    replay: Replay,
}

impl Forward {
    fn new(after: u64, limit: usize, visibility: Visibility) -> Self {
        Forward {
            after,
            limit,
            visibility,
            first: true,
            replay: Replay::default(),
        }
    }

    /// Offers a record's entries in order; `true` once the page is full (`more` set).
    fn offer(&mut self, entries: Vec<LogEntry>) -> bool {
        for entry in entries {
            if entry.seq <= self.after {
                continue;
            }
            if std::mem::take(&mut self.first) {
                self.replay.gap = entry.prev > self.after;
            }
            if !self.visibility.admits(&entry.message) {
                continue;
            }
            if self.replay.entries.len() == self.limit {
                self.replay.more = true;
                return true;
            }
            self.replay.entries.push(entry);
        }
        false
    }
}
