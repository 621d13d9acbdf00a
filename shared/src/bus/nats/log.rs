//! Appending to a guild log: the append takes its place in the guild's order at once
//! ([`super::heads`]), reads the claim (one direct get, concurrently with the appends ahead of
//! it) to decide whether to append at all, then, in its turn, the entry is published to `chat.log.{guild}` with its `prev` link enforced by
//! `Nats-Expected-Last-Subject-Sequence`, and deduplicated by `Nats-Msg-Id`; a duplicate is
//! checked against the sender of the first copy; the claim is written afterwards, unawaited.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::LastRawMessageErrorKind;

use super::NatsBus;
use super::claims::{self, ClaimState, is_valid_message_id};
use super::connection::ensure_connected;
use super::errors::{from_publish, unavailable};
use super::heads::Ticket;
use super::payload::{LogRecord, decode, encode};
use super::subjects::log_subject;
use super::trace_headers;
use crate::bus::{AppendOutcome, BusError, INTERNAL_VERSION, LogEntry};
use crate::protocol::ChatMessage;
use crate::protocol::validate::is_valid_guild_id;

/// Publishes of one entry before giving up on a guild whose head keeps moving under us
/// (other processes appending to the same guild at the same time).
const APPEND_ATTEMPTS: usize = 10;

/// How one publish to the log ended.
enum Published {
    Fresh(PublishAck),
    Duplicate(u64),
    StaleHead,
}

impl NatsBus {
    #[tracing::instrument(name = "bus.append", skip_all,
        fields(guild = %message.guild_id, message_id = %message.message_id))]
    pub(super) async fn append_message(
        &self,
        message: ChatMessage,
    ) -> Result<AppendOutcome, BusError> {
        ensure_connected(&self.client)?;
        check_addressable(&message)?;
        // Before the first await: the caller starts a guild's appends in arrival order.
        let ticket = self.heads.ticket(&message.guild_id);
        match claims::check(&self.claims, &message).await? {
            ClaimState::Foreign => Ok(AppendOutcome::ForeignId),
            ClaimState::Stored(seq) => Ok(AppendOutcome::Duplicate { seq }),
            ClaimState::Pending => self.append_claimed(ticket, Arc::new(message)).await,
        }
    }

    /// Publishes a claimed message at the head of its guild once the appends before it are
    /// done, retrying when the head moved.
    async fn append_claimed(
        &self,
        ticket: Ticket,
        message: Arc<ChatMessage>,
    ) -> Result<AppendOutcome, BusError> {
        let turn = ticket.turn().await;
        for _ in 0..APPEND_ATTEMPTS {
            let prev = match turn.head() {
                Some(seq) => seq,
                None => self.read_head(&message.guild_id).await?,
            };
            let published = self.publish_entry(&message, prev).await;
            match published {
                Ok(Published::Fresh(ack)) => {
                    turn.set_head(Some(ack.sequence));
                    claims::record_seq(&self.js, &message, ack.sequence);
                    return Ok(AppendOutcome::Appended(LogEntry {
                        seq: ack.sequence,
                        prev,
                        message,
                        trace: Default::default(),
                    }));
                }
                Ok(Published::Duplicate(seq)) => {
                    // Lets the next append of the guild go while the first copy is read.
                    drop(ticket);
                    return self.settle_duplicate(&message, seq).await;
                }
                Ok(Published::StaleHead) => turn.set_head(None),
                Err(error) => {
                    turn.set_head(None);
                    return Err(error);
                }
            }
        }
        Err(BusError::Unavailable(format!(
            "guild {} kept moving during {APPEND_ATTEMPTS} append attempts",
            message.guild_id
        )))
    }

    async fn publish_entry(
        &self,
        message: &Arc<ChatMessage>,
        prev: u64,
    ) -> Result<Published, BusError> {
        let record = LogRecord {
            v: INTERNAL_VERSION,
            prev,
            message: message.clone(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, message.message_id.as_str());
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            prev.to_string().as_str(),
        );
        trace_headers::add_current(&mut headers);
        let ack = self
            .js
            .publish_with_headers(log_subject(&message.guild_id), headers, encode(&record)?)
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

    /// A publish JetStream dropped as a duplicate of the entry at `seq` (same `Nats-Msg-Id`
    /// within the window, the claim not written yet): the id's owner is the sender of that
    /// entry, so another sender is refused.
    async fn settle_duplicate(
        &self,
        message: &ChatMessage,
        seq: u64,
    ) -> Result<AppendOutcome, BusError> {
        let stored = self
            .log
            .direct_get(seq)
            .await
            .map_err(|e| unavailable("reading the first copy of a messageId", e))?;
        let first = decode::<LogRecord>(&stored.payload)?;
        if first.message.from.id != message.from.id {
            return Ok(AppendOutcome::ForeignId);
        }
        claims::record_seq(&self.js, &first.message, seq);
        Ok(AppendOutcome::Duplicate { seq })
    }

    /// The seq of the guild's newest stored entry (0 when it has none).
    async fn read_head(&self, guild_id: &str) -> Result<u64, BusError> {
        match self
            .log
            .get_last_raw_message_by_subject(&log_subject(guild_id))
            .await
        {
            Ok(last) => Ok(last.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(unavailable("reading the head of a guild log", e)),
        }
    }
}

/// The guild must be usable as a subject token and the id as a key and `Nats-Msg-Id`.
fn check_addressable(message: &ChatMessage) -> Result<(), BusError> {
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
