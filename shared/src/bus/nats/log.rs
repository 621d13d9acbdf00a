//! Appending to a guild log, as a group commit: the messages of one guild handed over together
//! (the router passes every send that queued while its previous append was in flight) go into
//! one record ([`super::records`]). The append takes its place in the guild's order at once
//! ([`super::heads`]), reads the messages' claims (one direct get each, concurrently, and
//! concurrently with the appends ahead of it), then, in its turn, drops the ids this guild's
//! writer stored recently ([`super::recent_ids`]) or twice in the same batch, and publishes the
//! record to `chat.log.{guild}` with its `prev` link enforced by
//! `Nats-Expected-Last-Subject-Sequence`. A record of one message also carries its messageId as
//! `Nats-Msg-Id` (a duplicate is checked against the sender of the first copy). The claims are
//! written afterwards, unawaited.

use std::collections::HashSet;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::publish::PublishAck;

use super::NatsBus;
use super::claims::{self, ClaimState, is_valid_message_id};
use super::connection::ensure_connected;
use super::errors::{from_publish, unavailable};
use super::heads::{Ticket, Turn};
use super::links::VisibleHead;
use super::payload::{LogRecord, encode};
use super::recent_ids::Stored;
use super::records::{MAX_RECORD_ENTRIES, entry_seq, index_of, record_of};
use super::subjects::log_subject;
use super::trace_headers;
use crate::bus::{AppendOutcome, BusError, INTERNAL_VERSION, LogEntry};
use crate::protocol::ChatMessage;
use crate::protocol::validate::is_valid_guild_id;

/// Publishes of one record before giving up on a guild whose head keeps moving under us
/// (other processes appending to the same guild at the same time).
const APPEND_ATTEMPTS: usize = 10;

/// How one publish to the log ended.
enum Published {
    Fresh(PublishAck),
    Duplicate(u64),
    StaleHead,
}

impl Published {
    /// What happened, with the stream seq it names, for the log.
    fn name(&self) -> (&'static str, u64) {
        match self {
            Published::Fresh(ack) => ("stored", ack.sequence),
            Published::Duplicate(seq) => ("duplicate", *seq),
            Published::StaleHead => ("stale head", 0),
        }
    }
}

/// Each message's outcome, in the order given.
type Outcomes = Vec<Result<AppendOutcome, BusError>>;

/// The messages of one append and what is known of each so far.
struct Batch {
    messages: Vec<Arc<ChatMessage>>,
    outcomes: Vec<Option<Result<AppendOutcome, BusError>>>,
}

impl NatsBus {
    /// Appends messages, each run of one guild (at most [`MAX_RECORD_ENTRIES`]) as one record.
    /// Every run takes its place in its guild's order before the first await.
    #[tracing::instrument(name = "bus.append", skip_all,
        fields(guild = messages.first().map_or("", |m| m.guild_id.as_str()),
            messages = messages.len()))]
    pub(super) async fn append_messages(&self, messages: Vec<ChatMessage>) -> Outcomes {
        let runs: Vec<(Ticket, Batch)> = runs_of_one_guild(messages)
            .into_iter()
            .map(|run| (self.heads.ticket(&run[0].guild_id), Batch::new(run)))
            .collect();
        let mut outcomes = Vec::new();
        for (ticket, batch) in runs {
            outcomes.extend(self.append_run(ticket, batch).await);
        }
        outcomes
    }

    async fn append_run(&self, ticket: Ticket, mut batch: Batch) -> Outcomes {
        if let Err(error) = ensure_connected(&self.client) {
            return batch.fail_rest(&error);
        }
        batch.check_addressable();
        self.read_claims(&mut batch).await;
        if batch.is_settled() {
            return batch.finish();
        }
        let turn = ticket.turn().await;
        for _ in 0..APPEND_ATTEMPTS {
            let head = match turn.head() {
                Some(head) => head,
                None => match self.read_head(&turn, &batch.messages[0].guild_id).await {
                    Ok(head) => head,
                    Err(error) => return batch.fail_rest(&error),
                },
            };
            let record = batch.record_of_fresh(&turn);
            if record.is_empty() {
                return batch.finish();
            }
            let published = self
                .publish_record(&batch, &record, head, turn.visible_head())
                .await;
            tracing::debug!(head, entries = record.len(), outcome = ?published.as_ref().map(Published::name),
                "published a record");
            match published {
                Ok(Published::Fresh(ack)) => {
                    batch.stored(&turn, &record, ack.sequence, head);
                    self.record_claims(&batch, &record);
                    return batch.finish();
                }
                Ok(Published::Duplicate(stream_seq)) => {
                    // Lets the next append of the guild go while the first copy is read.
                    drop(ticket);
                    let message = batch.messages[record[0].index].clone();
                    batch.outcomes[record[0].index] =
                        Some(self.settle_duplicate(&message, stream_seq).await);
                    return batch.finish();
                }
                Ok(Published::StaleHead) => turn.forget_head(),
                Err(error) => {
                    turn.forget_head();
                    return batch.fail_rest(&error);
                }
            }
        }
        let guild = batch.messages[0].guild_id.clone();
        batch.fail_rest(&BusError::Unavailable(format!(
            "guild {guild} kept moving during {APPEND_ATTEMPTS} append attempts"
        )))
    }

    /// Reads the durable claims of every message still open, in one batch read.
    async fn read_claims(&self, batch: &mut Batch) {
        let open: Vec<usize> = batch.open().collect();
        let messages: Vec<&ChatMessage> = open.iter().map(|&i| &*batch.messages[i]).collect();
        let states = claims::check_all(&self.client, &messages).await;
        for (n, i) in open.into_iter().enumerate() {
            let state = match &states {
                Ok(states) => states.get(n).cloned().unwrap_or(Ok(ClaimState::Pending)),
                Err(error) => Err(error.clone()),
            };
            batch.outcomes[i] = match state {
                Ok(ClaimState::Pending) => None,
                Ok(ClaimState::Foreign) => Some(Ok(AppendOutcome::ForeignId)),
                Ok(ClaimState::Stored(seq)) => Some(Ok(AppendOutcome::Duplicate { seq })),
                Err(error) => Some(Err(error)),
            };
        }
    }

    async fn publish_record(
        &self,
        batch: &Batch,
        record: &[Fresh],
        prev: u64,
        prev_visible: VisibleHead,
    ) -> Result<Published, BusError> {
        let first = &batch.messages[record[0].index];
        let stored = LogRecord {
            v: INTERNAL_VERSION,
            prev,
            prev_visible,
            messages: record
                .iter()
                .map(|fresh| batch.messages[fresh.index].clone())
                .collect(),
        };
        let mut headers = HeaderMap::new();
        if record.len() == 1 {
            headers.insert(NATS_MESSAGE_ID, first.message_id.as_str());
        }
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            record_of(prev).to_string().as_str(),
        );
        trace_headers::add_current(&mut headers);
        let ack = self
            .js
            .publish_with_headers(log_subject(&first.guild_id), headers, encode(&stored)?)
            .await
            .map_err(|e| from_publish("appending to the log", &e))?
            .await;
        match ack {
            Ok(ack) if ack.duplicate => Ok(Published::Duplicate(ack.sequence)),
            Ok(ack) => Ok(Published::Fresh(ack)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                tracing::debug!(prev, "guild head moved; re-reading it");
                Ok(Published::StaleHead)
            }
            Err(e) => Err(from_publish("appending to the log", &e)),
        }
    }

    /// Writes the claims of a stored record, in the background.
    fn record_claims(&self, batch: &Batch, record: &[Fresh]) {
        let stored = (record.iter())
            .filter_map(|fresh| match &batch.outcomes[fresh.index] {
                Some(Ok(AppendOutcome::Appended(entry))) => Some((&*entry.message, entry.seq)),
                _ => None,
            })
            .collect();
        claims::record_seqs(&self.js, &self.client, stored);
    }

    /// A publish JetStream dropped as a duplicate of the record at `stream_seq` (same
    /// `Nats-Msg-Id` within the window, the claim not written yet): the id's owner is the sender
    /// of that entry, so another sender is refused.
    async fn settle_duplicate(
        &self,
        message: &ChatMessage,
        stream_seq: u64,
    ) -> Result<AppendOutcome, BusError> {
        let stored = self
            .log
            .direct_get(stream_seq)
            .await
            .map_err(|e| unavailable("reading the first copy of a messageId", e))?;
        let record = self
            .decode_record(&stored.subject, &stored.payload)
            .ok_or_else(|| BusError::BadPayload("the first copy does not decode".into()))?;
        let index = index_of(&record.messages, &message.message_id)
            .ok_or_else(|| BusError::BadPayload("the first copy holds another id".into()))?;
        let first = &record.messages[index];
        if first.from.id != message.from.id {
            return Ok(AppendOutcome::ForeignId);
        }
        let seq = entry_seq(stream_seq, index);
        claims::record_seqs(&self.js, &self.client, vec![(&**first, seq)]);
        Ok(AppendOutcome::Duplicate { seq })
    }

    /// The seq of the guild's newest entry (0 when it has none), read from the stream with the
    /// guild's visible head; the ids of its newest records are remembered on the way (see
    /// [`super::recent_ids`]).
    async fn read_head(&self, turn: &Turn<'_>, guild_id: &str) -> Result<u64, BusError> {
        let (head, visible) = self.remember_tail(turn, guild_id).await?;
        turn.set_head(head, visible);
        Ok(head)
    }
}

/// A message of the batch going into the record.
#[derive(Clone, Copy)]
struct Fresh {
    /// Its place in the batch.
    index: usize,
}

impl Batch {
    fn new(messages: Vec<ChatMessage>) -> Self {
        let outcomes = messages.iter().map(|_| None).collect();
        Batch {
            messages: messages.into_iter().map(Arc::new).collect(),
            outcomes,
        }
    }

    /// Messages not answered yet.
    fn open(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.messages.len()).filter(|&i| self.outcomes[i].is_none())
    }

    fn is_settled(&self) -> bool {
        self.open().next().is_none()
    }

    /// The guild must be usable as a subject token and the id as a key and `Nats-Msg-Id`.
    fn check_addressable(&mut self) {
        for (message, outcome) in self.messages.iter().zip(&mut self.outcomes) {
            if let Err(error) = addressable(message) {
                *outcome = Some(Err(error));
            }
        }
    }

    /// The open messages to store now: each id this guild's writer stored recently is
    /// answered from memory, and a second copy within the batch is left open (answered as
    /// the first's duplicate once stored).
    fn record_of_fresh(&mut self, turn: &Turn<'_>) -> Vec<Fresh> {
        let mut record = Vec::new();
        let mut ids = HashSet::new();
        for i in self.open().collect::<Vec<_>>() {
            let message = &self.messages[i];
            if let Some(stored) = turn.remembered(&message.message_id) {
                self.outcomes[i] = Some(Ok(judge(&stored, &message.from.id)));
            } else if ids.insert(message.message_id.clone()) {
                record.push(Fresh { index: i });
            }
        }
        record
    }

    /// The record is stored at `stream_seq` on `prev`: its messages become entries, each
    /// second copy in the batch a duplicate of its first, and the guild's head moves.
    fn stored(&mut self, turn: &Turn<'_>, record: &[Fresh], stream_seq: u64, prev: u64) {
        let mut prev = prev;
        for (position, fresh) in record.iter().enumerate() {
            let message = self.messages[fresh.index].clone();
            let seq = entry_seq(stream_seq, position);
            turn.remember(&message.message_id, &message.from.id, seq);
            self.outcomes[fresh.index] = Some(Ok(AppendOutcome::Appended(LogEntry {
                seq,
                prev,
                message,
                trace: Default::default(),
            })));
            prev = seq;
        }
        let admin_only = record.iter().map(|f| self.messages[f.index].admin_only);
        turn.stored(stream_seq, prev, admin_only);
        for i in self.open().collect::<Vec<_>>() {
            let message = &self.messages[i];
            if let Some(stored) = turn.remembered(&message.message_id) {
                self.outcomes[i] = Some(Ok(judge(&stored, &message.from.id)));
            }
        }
    }

    /// Answers every open message with `error`, and returns the outcomes.
    fn fail_rest(mut self, error: &BusError) -> Outcomes {
        for outcome in &mut self.outcomes {
            outcome.get_or_insert_with(|| Err(error.clone()));
        }
        self.finish()
    }

    fn finish(self) -> Outcomes {
        (self.outcomes.into_iter())
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Err(BusError::Unavailable(
                        "a message was left unanswered".into(),
                    ))
                })
            })
            .collect()
    }
}

/// What a remembered store of an id means for a message with that id from `sender`.
fn judge(stored: &Stored, sender: &str) -> AppendOutcome {
    if stored.owner == sender {
        AppendOutcome::Duplicate { seq: stored.seq }
    } else {
        AppendOutcome::ForeignId
    }
}

/// Splits messages into runs of one guild, in order, each small enough for one record.
fn runs_of_one_guild(messages: Vec<ChatMessage>) -> Vec<Vec<ChatMessage>> {
    let mut runs: Vec<Vec<ChatMessage>> = Vec::new();
    for message in messages {
        match runs.last_mut() {
            Some(run) if run[0].guild_id == message.guild_id && run.len() < MAX_RECORD_ENTRIES => {
                run.push(message)
            }
            _ => runs.push(vec![message]),
        }
    }
    runs
}

fn addressable(message: &ChatMessage) -> Result<(), BusError> {
    if !is_valid_guild_id(&message.guild_id) {
        return Err(BusError::BadPayload(format!(
            "guild id {:?} cannot name a log",
            message.guild_id
        )));
    }
    if !is_valid_message_id(&message.message_id) {
        return Err(BusError::BadPayload(format!(
            "messageId {:?} cannot be a claim key",
            message.message_id
        )));
    }
    Ok(())
}
