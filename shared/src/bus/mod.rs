//! The bus: how gateways, routers and bot workers talk. One trait, two implementations —
//! in-memory ([`crate::bus::MemoryBus`], embedded mode) and NATS/JetStream ([`crate::bus::nats`],
//! distributed mode). Everything that crosses it is defined here, versioned, and encoded as
//! MessagePack by the network implementation.
//!
//! Guarantees every implementation gives:
//! - `append` is the single ordering point: within a guild, `seq` strictly increases and each
//!   entry knows the `prev` seq of its guild, so a subscriber can detect a missed delivery and
//!   fill it from the log.
//! - `append` is idempotent by `messageId` and a messageId belongs to its first sender.
//! - `publish` is best effort (at most once); the log is the truth.
//! - Sends handed over one after another by `enqueue` (each awaited before the next) reach
//!   their guild's log in that order, while their answers are still on the way: a sender may
//!   keep many sends in flight without losing its order.

pub mod history;
mod instrumented;
mod memory;
mod memory_fanout;
mod memory_log;
pub mod memory_presence;
pub mod nats;
pub mod presence;

pub use history::HistoryPage;
pub use instrumented::InstrumentedBus;
pub use memory::{MemoryBus, MemoryBusConfig};

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::protocol::identity::UserInfo;
use crate::protocol::{ChatMessage, ErrorCode, ErrorFrame};
use crate::telemetry::trace_context::TraceContext;

/// Version of the internal payloads; a consumer drops payloads of another version.
pub const INTERNAL_VERSION: u8 = 1;

pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// The answer to a send that [`Bus::enqueue`] has handed to a router.
pub type Answer = Pin<Box<dyn Future<Output = Result<SendOutcome, BusError>> + Send + 'static>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("bus request timed out")]
    Timeout,
    #[error("bad payload on the bus: {0}")]
    BadPayload(String),
}

/// A send as the gateway (or a bot worker) hands it to the router, with the identity it
/// verified. The router validates it again; it trusts only `sender` and `member_verified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    pub v: u8,
    pub sender: UserInfo,
    pub guild_id: Option<String>,
    pub text: Option<String>,
    pub admin_only: bool,
    pub request_bot: bool,
    pub message_id: Option<String>,
    /// The gateway found `guild_id` among the sender's guilds in the session store.
    pub member_verified: bool,
}

/// The router's answer to a send: the ack fields, or the error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendAck {
    pub message_id: String,
    pub seq: u64,
}

pub type SendOutcome = Result<SendAck, ErrorCode>;

/// One entry of a guild log; also what is delivered to gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// The seq of the previous entry of the same guild (0 for the first).
    pub prev: u64,
    pub message: Arc<ChatMessage>,
    /// On a live delivery: the span that published it (empty elsewhere, and while tracing
    /// export is off). Not part of the entry's value.
    #[serde(skip)]
    pub trace: TraceContext,
}

/// The result of appending to a guild log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored now, as this entry.
    Appended(LogEntry),
    /// This messageId was already stored by the same sender: the first one's seq.
    Duplicate { seq: u64 },
    /// This messageId belongs to another sender.
    ForeignId,
}

/// A page read forward from a guild log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    pub entries: Vec<LogEntry>,
    /// Some entries after the requested position are no longer retained.
    pub gap: bool,
    /// The page was cut at the limit; read on from the last entry.
    pub more: bool,
}

/// Who may read what a log read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Everything, admin-only included.
    All,
    /// Only messages that are not admin-only.
    Public,
}

impl Visibility {
    pub fn for_admin(admin: bool) -> Self {
        if admin {
            Visibility::All
        } else {
            Visibility::Public
        }
    }

    pub fn admits(self, message: &ChatMessage) -> bool {
        self == Visibility::All || !message.admin_only
    }
}

/// What a gateway subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Every entry of one guild (admin-only ones included; the gateway filters per viewer).
    Guild(String),
    /// Admin-only entries of every guild.
    AdminOnly,
}

/// A bot request taken from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotJob {
    pub v: u8,
    pub seq: u64,
    pub request: Arc<ChatMessage>,
}

/// A job handed to one bot worker; settle it with exactly one of the methods.
pub struct BotDelivery {
    pub job: BotJob,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// Deliveries allowed in all; `attempt == max_attempts` is the last chance.
    pub max_attempts: u32,
    pub settle: Box<dyn JobSettle>,
    /// The span that queued the job (empty while tracing export is off).
    pub trace: TraceContext,
}

impl std::fmt::Debug for BotDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotDelivery")
            .field("job", &self.job)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// How a bot worker settles a job.
#[async_trait::async_trait]
pub trait JobSettle: Send {
    /// Done (answered, or given up for good): never deliver again.
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// Deliver again after `delay` (to this or another worker).
    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), BusError>;
    /// Still working: push the redelivery deadline back.
    async fn in_progress(&self) -> Result<(), BusError>;
}

/// Something that happened to a user, applied live by every gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserEvent {
    /// The session is gone: close the user's sockets with 4001.
    Revoked,
    /// The guild list changed: reload it from the session store.
    GuildsChanged,
    /// An error frame for the user's sockets only (e.g. `bot_unavailable`).
    Notice { frame: ErrorFrame },
}

/// A send waiting for the router, with the way back to its sender.
pub struct IngressItem {
    pub request: SendRequest,
    pub reply: Box<dyn IngressReply>,
    /// The span that submitted the send (empty while tracing export is off).
    pub trace: TraceContext,
    /// When the submitter stops waiting (it has answered `server_error` by then): a router
    /// drops a send taken after this instead of storing a message nobody is told about.
    pub deadline: Option<std::time::Instant>,
}

impl IngressItem {
    /// Whether the submitter has given up on this send.
    pub fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| std::time::Instant::now() >= deadline)
    }
}

/// The way back from the router to a waiting sender.
#[async_trait::async_trait]
pub trait IngressReply: Send {
    async fn reply(self: Box<Self>, outcome: SendOutcome);
}

/// The bus every process is wired to.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Hands a send to a router: returns once the send has its place in the order of what
    /// this process hands over (a send enqueued after it is stored after it, in the same
    /// guild), with its answer still to come.
    async fn enqueue(&self, request: SendRequest) -> Result<Answer, BusError>;
    /// Hands a send to a router and waits for its answer.
    async fn submit(&self, request: SendRequest) -> Result<SendOutcome, BusError> {
        self.enqueue(request).await?.await
    }
    /// The sends addressed to routers (a router calls this once; several routers share work).
    async fn ingress(&self) -> Result<BoxStream<IngressItem>, BusError>;
    /// Stops taking new sends for this router and hands its share of the ingress to the
    /// others (a router stopping on SIGTERM). The ingress stream then ends after the sends
    /// already taken; read it to the end and answer them. A no-op where one router serves all.
    async fn release_ingress(&self) {}

    /// Appends a message to its guild log (the ordering and idempotency point).
    async fn append(&self, message: ChatMessage) -> Result<AppendOutcome, BusError>;
    /// Appends several messages (the router hands over one guild's queued sends at once),
    /// in order, as if one by one; one outcome per message, in the same order. A bus may store
    /// them together (NATS: one record, one round trip).
    async fn append_batch(
        &self,
        messages: Vec<ChatMessage>,
    ) -> Vec<Result<AppendOutcome, BusError>> {
        let mut outcomes = Vec::with_capacity(messages.len());
        for message in messages {
            outcomes.push(self.append(message).await);
        }
        outcomes
    }
    /// Delivers an appended entry to the gateways subscribed to it (best effort).
    async fn publish(&self, entry: &LogEntry) -> Result<(), BusError>;
    /// Delivers consecutive appended entries of one guild, oldest first (best effort); a bus
    /// may carry them together (NATS: one message per gateway).
    async fn publish_batch(&self, entries: &[LogEntry]) -> Result<(), BusError> {
        for entry in entries {
            self.publish(entry).await?;
        }
        Ok(())
    }
    /// Live entries of a topic, from now on.
    async fn subscribe(&self, topic: Topic) -> Result<BoxStream<LogEntry>, BusError>;
    /// Entries of a guild with seq > `after`, oldest first, at most `limit`.
    async fn read_after(
        &self,
        guild_id: &str,
        after: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Replay, BusError>;
    /// Entries of a guild with seq < `before` (or the newest), newest first, at most `limit`,
    /// scanning at most [`history::MAX_SCANNED_PER_PAGE`] entries; [`HistoryPage::more`] says
    /// whether older entries may remain, and [`HistoryPage::next_before`] is the `before` of the
    /// next page (an empty page that stopped at the scan cap needs it to make progress).
    async fn read_history(
        &self,
        guild_id: &str,
        before: Option<u64>,
        limit: usize,
        visibility: Visibility,
    ) -> Result<HistoryPage, BusError>;

    /// [`Bus::read_history`] without the next page's `before`: the entries and whether older
    /// ones may remain.
    async fn read_before(
        &self,
        guild_id: &str,
        before: Option<u64>,
        limit: usize,
        visibility: Visibility,
    ) -> Result<(Vec<LogEntry>, bool), BusError> {
        let page = self
            .read_history(guild_id, before, limit, visibility)
            .await?;
        Ok((page.entries, page.more))
    }

    /// Queues a bot request on the durable work queue.
    async fn enqueue_bot_job(&self, job: BotJob) -> Result<(), BusError>;
    /// Bot jobs for this worker (workers share the queue; each job goes to one at a time).
    async fn bot_jobs(&self) -> Result<BoxStream<BotDelivery>, BusError>;

    /// Tells every gateway about a user.
    async fn publish_user_event(&self, user_id: &str, event: UserEvent) -> Result<(), BusError>;
    /// Every user event, as `(user_id, event)`.
    async fn user_events(&self) -> Result<BoxStream<(String, UserEvent)>, BusError>;

    /// Whether the bus answers now.
    async fn ping(&self) -> Result<(), BusError>;

    // --- Presence (issue #13), additive: see `crate::bus::presence`. ---
    /// The presence channel of this bus; `None` where presence is not carried.
    fn presence(&self) -> Option<crate::bus::presence::SharedPresenceBus> {
        None
    }
}
