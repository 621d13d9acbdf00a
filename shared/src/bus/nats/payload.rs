//! What the NATS bus puts on the wire: MessagePack with named fields, each payload carrying
//! the internal version `v`. A payload that does not decode, or has another version, is
//! refused here and dropped (logged and counted) by its consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bus::{BusError, INTERNAL_VERSION, LogEntry, SendOutcome, SendRequest, UserEvent};
use crate::protocol::ChatMessage;

/// One stored record of `CHAT_LOG`: consecutive entries of one guild (see [`super::records`]
/// for their seqs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRecord {
    pub v: u8,
    /// The seq of the entry before the first one of this record, in the same guild (0 for the
    /// guild's first).
    pub prev: u64,
    /// The seq of the guild's newest entry that is not admin-only and older than this record's
    /// first entry (issue #14 item 5: a member's history walk jumps there, over records of only
    /// admin-only entries): `Some(0)` when there is none, `None` when the writer did not know
    /// (records written before the link existed, and the first ones on top of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_visible: Option<u64>,
    pub messages: Vec<Arc<ChatMessage>>,
}

/// The value of a `CHAT_MSGIDS` key: who owns a messageId and where it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub v: u8,
    pub owner: String,
    pub guild: String,
    /// 0 while claimed but not yet appended.
    pub seq: u64,
}

/// A live delivery on `chat.deliver.{g}` / `chat.admin.{g}`: one or more entries of a guild,
/// oldest first (one record's worth under load), decoded once per gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub v: u8,
    pub entries: Vec<DeliveredEntry>,
}

/// One entry of a [`Delivery`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveredEntry {
    pub seq: u64,
    pub prev: u64,
    pub message: Arc<ChatMessage>,
}

impl Delivery {
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a LogEntry>) -> Self {
        Delivery {
            v: INTERNAL_VERSION,
            entries: entries
                .into_iter()
                .map(|entry| DeliveredEntry {
                    seq: entry.seq,
                    prev: entry.prev,
                    message: entry.message.clone(),
                })
                .collect(),
        }
    }

    pub fn into_entries(self) -> impl Iterator<Item = LogEntry> {
        self.entries.into_iter().map(|entry| LogEntry {
            seq: entry.seq,
            prev: entry.prev,
            message: entry.message,
            trace: Default::default(),
        })
    }
}

/// Sends of one gateway to one ingress partition, coalesced while its earlier batches were
/// being answered (see [`super::submitter`]): one request on `chat.ingress.{partition}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngressBatch {
    pub v: u8,
    pub sends: Vec<IngressSend>,
}

/// One send of an [`IngressBatch`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngressSend {
    pub request: SendRequest,
    /// How long its submitter still waits, in milliseconds, when the batch leaves: a router
    /// drops a send taken after that instead of storing a message nobody is told about.
    pub timeout_ms: u64,
    /// The submitting span's W3C context (empty while tracing export is off).
    #[serde(default)]
    pub trace: WireTrace,
}

/// The router's answer to an [`IngressBatch`]: one outcome per send, in the same order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngressAnswers {
    pub v: u8,
    pub outcomes: Vec<SendOutcome>,
}

/// W3C trace context carried inside a payload, for what travels several to a message (the
/// sends of an [`IngressBatch`]); see [`super::trace_headers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTrace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A user event on `session.events.{user}`; the user id travels in full here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserEventPayload {
    pub v: u8,
    pub user: String,
    pub event: UserEvent,
}

/// Payloads that carry the internal version.
pub trait Versioned {
    fn version(&self) -> u8;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn version(&self) -> u8 {
                self.v
            }
        }
    )*};
}

versioned!(
    LogRecord,
    Claim,
    Delivery,
    UserEventPayload,
    IngressBatch,
    IngressAnswers,
    SendRequest,
    crate::bus::BotJob
);

/// Encodes a payload as named MessagePack.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, BusError> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| BusError::BadPayload(e.to_string()))
}

/// Decodes a versioned payload, refusing another version.
pub fn decode<T: DeserializeOwned + Versioned>(bytes: &[u8]) -> Result<T, BusError> {
    let value: T = rmp_serde::from_slice(bytes).map_err(|e| BusError::BadPayload(e.to_string()))?;
    if value.version() != INTERNAL_VERSION {
        return Err(BusError::BadPayload(format!(
            "version {} (expected {INTERNAL_VERSION})",
            value.version()
        )));
    }
    Ok(value)
}

/// Payloads dropped because they did not decode, per consumer kind.
#[derive(Debug, Default)]
pub struct DropCounters {
    ingress: AtomicU64,
    delivery: AtomicU64,
    user_events: AtomicU64,
    bot_jobs: AtomicU64,
    log: AtomicU64,
}

/// Where a dropped payload was consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropKind {
    Ingress,
    Delivery,
    UserEvents,
    BotJobs,
    Log,
}

/// A snapshot of [`DropCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedPayloads {
    pub ingress: u64,
    pub delivery: u64,
    pub user_events: u64,
    pub bot_jobs: u64,
    /// Log entries that did not decode when read back (skipped by reads).
    pub log: u64,
}

impl DropCounters {
    /// Logs and counts one dropped payload.
    pub fn record(&self, kind: DropKind, subject: &str, error: &BusError) {
        tracing::warn!(?kind, subject, %error, "dropping an undecodable bus payload");
        self.counter(kind).fetch_add(1, Ordering::Relaxed);
        super::dropped_metric::record(kind);
    }

    pub fn snapshot(&self) -> DroppedPayloads {
        DroppedPayloads {
            ingress: self.ingress.load(Ordering::Relaxed),
            delivery: self.delivery.load(Ordering::Relaxed),
            user_events: self.user_events.load(Ordering::Relaxed),
            bot_jobs: self.bot_jobs.load(Ordering::Relaxed),
            log: self.log.load(Ordering::Relaxed),
        }
    }

    fn counter(&self, kind: DropKind) -> &AtomicU64 {
        match kind {
            DropKind::Ingress => &self.ingress,
            DropKind::Delivery => &self.delivery,
            DropKind::UserEvents => &self.user_events,
            DropKind::BotJobs => &self.bot_jobs,
            DropKind::Log => &self.log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let claim = Claim {
            v: INTERNAL_VERSION + 1,
            owner: "u1".into(),
            guild: "g1".into(),
            seq: 3,
        };
        let bytes = encode(&claim).unwrap();
        assert!(decode::<Claim>(&bytes).is_err());
        assert!(decode::<Claim>(b"\xc1garbage").is_err());
        let ok = Claim {
            v: INTERNAL_VERSION,
            ..claim
        };
        assert_eq!(decode::<Claim>(&encode(&ok).unwrap()).unwrap(), ok);
    }
}
