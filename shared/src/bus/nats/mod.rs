//! The NATS/JetStream bus of distributed mode, with the same semantics as
//! [`crate::bus::MemoryBus`]. Each concern lives in its own file: [`ingress`] (gateway → router
//! request/reply), [`log`] and [`claims`] (the ordered, idempotent guild log), [`replay`]
//! (reading it back), [`delivery`] (live fan-out), [`bot_queue`] (the work queue),
//! [`events`] (user events). Names are in [`subjects`], payloads in [`payload`]; the whole
//! layout is described in `docs/architecture.md`.

pub mod auth;
mod bot_queue;
mod claims;
pub mod config;
mod connection;
pub mod connection_events;
mod decoded;
mod delivery;
mod direct_batch;
pub mod dropped_metric;
mod errors;
mod events;
mod heads;
mod ingress;
mod leases;
mod links;
mod log;
mod ownership_plan;
pub mod partitions;
mod patience;
pub mod payload;
mod presence;
mod recent_ids;
mod records;
mod replay;
mod setup;
pub mod subjects;
mod submitter;
mod tail;
mod trace_headers;

use std::sync::Arc;

use async_nats::Client;
use async_nats::jetstream;
use async_nats::jetstream::consumer::PullConsumer;

pub use auth::NatsAuth;
pub use config::NatsConfig;
pub use leases::TAKEOVER_BOUND;
pub use payload::DroppedPayloads;
pub use setup::StreamRole;

use crate::bus::*;
use crate::protocol::ChatMessage;
use heads::GuildHeads;
use payload::DropCounters;

/// How long `ping` waits for JetStream to describe the log stream.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a JetStream API call or publish acknowledgement may take.
const JETSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The bus over NATS core (ingress, delivery, user events) and JetStream (log, claims, bot
/// queue).
pub struct NatsBus {
    client: Client,
    js: jetstream::Context,
    log: jetstream::stream::Stream,
    bot_consumer: PullConsumer,
    config: NatsConfig,
    heads: GuildHeads,
    drops: Arc<DropCounters>,
    /// Stops the router's partition ownership (`ingress.rs`); `None` until `ingress`.
    ingress_stop: ingress::IngressStop,
    /// A gateway's sends, coalesced per ingress partition.
    submitter: submitter::Submitter,
}

impl NatsBus {
    /// Connects, and creates or updates the streams, consumer and bucket (as their owner).
    pub async fn connect(url: &str, config: &NatsConfig) -> Result<Arc<NatsBus>, BusError> {
        Self::connect_as(url, config, StreamRole::Owner).await
    }

    /// Connects; the owner creates or updates the streams, the others verify them.
    pub async fn connect_as(
        url: &str,
        config: &NatsConfig,
        role: StreamRole,
    ) -> Result<Arc<NatsBus>, BusError> {
        let client = connection::open(url, "chat", &config.auth).await?;
        if role == StreamRole::Owner {
            setup::check_server_version(&client.server_info().version)?;
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(JETSTREAM_TIMEOUT);
        let setup = setup::ensure(&js, config, role).await?;
        Ok(Arc::new(NatsBus {
            submitter: submitter::Submitter::new(client.clone()),
            client,
            js,
            log: setup.log,
            bot_consumer: setup.bot_consumer,
            config: config.clone(),
            heads: GuildHeads::default(),
            drops: Arc::default(),
            ingress_stop: Default::default(),
        }))
    }

    /// Payloads dropped so far because they did not decode.
    pub fn dropped_payloads(&self) -> DroppedPayloads {
        self.drops.snapshot()
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn enqueue(&self, request: SendRequest) -> Result<Answer, BusError> {
        self.enqueue_request(request)
    }

    async fn ingress(&self) -> Result<BoxStream<IngressItem>, BusError> {
        self.ingress_items().await
    }

    async fn release_ingress(&self) {
        self.stop_ingress().await
    }

    async fn append(&self, message: ChatMessage) -> Result<AppendOutcome, BusError> {
        let outcome = self.append_messages(vec![message]).await.pop();
        outcome.unwrap_or_else(|| Err(BusError::Unavailable("no append outcome".into())))
    }

    async fn append_batch(
        &self,
        messages: Vec<ChatMessage>,
    ) -> Vec<Result<AppendOutcome, BusError>> {
        self.append_messages(messages).await
    }

    async fn publish(&self, entry: &LogEntry) -> Result<(), BusError> {
        self.deliver(std::slice::from_ref(entry)).await
    }

    async fn publish_batch(&self, entries: &[LogEntry]) -> Result<(), BusError> {
        self.deliver(entries).await
    }

    async fn subscribe(&self, topic: Topic) -> Result<BoxStream<LogEntry>, BusError> {
        self.subscribe_topic(topic).await
    }

    async fn read_after(
        &self,
        guild_id: &str,
        after: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Replay, BusError> {
        self.replay_after(guild_id, after, limit, visibility).await
    }

    async fn read_history(
        &self,
        guild_id: &str,
        before: Option<u64>,
        limit: usize,
        visibility: Visibility,
    ) -> Result<HistoryPage, BusError> {
        self.replay_before(guild_id, before, limit, visibility)
            .await
    }

    async fn enqueue_bot_job(&self, job: BotJob) -> Result<(), BusError> {
        self.enqueue_job(job).await
    }

    async fn bot_jobs(&self) -> Result<BoxStream<BotDelivery>, BusError> {
        self.job_deliveries().await
    }

    async fn publish_user_event(&self, user_id: &str, event: UserEvent) -> Result<(), BusError> {
        self.send_user_event(user_id, event).await
    }

    async fn user_events(&self) -> Result<BoxStream<(String, UserEvent)>, BusError> {
        self.subscribe_user_events().await
    }

    async fn ping(&self) -> Result<(), BusError> {
        connection::ensure_connected(&self.client)?;
        match tokio::time::timeout(PING_TIMEOUT, self.log.get_info()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(errors::unavailable(
                "asking JetStream for the log stream",
                e,
            )),
            Err(_) => Err(BusError::Timeout),
        }
    }

    // Presence (issue #13): see `presence.rs`.
    fn presence(&self) -> Option<crate::bus::presence::SharedPresenceBus> {
        Some(std::sync::Arc::new(presence::NatsPresence::new(
            self.client.clone(),
        )))
    }
}
