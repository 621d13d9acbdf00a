//! The in-memory bus of embedded mode: one process, the same guarantees as the NATS bus
//! (ordered per-guild log with `prev` links, idempotent append, bounded retention, a retrying
//! work queue), with channels instead of a network.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};

use crate::bus::memory_fanout::Fanout;
use crate::bus::memory_log::GuildLog;
use crate::bus::*;
use crate::protocol::{ChatMessage, ErrorCode};
use crate::telemetry::trace_context::TraceContext;

/// Capacity of each live topic; a subscriber that falls further behind sees a `prev` gap and
/// fills it from the log.
const TOPIC_CAPACITY: usize = 4096;

/// Limits of the in-memory log.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBusConfig {
    /// Entries kept per guild.
    pub retain_per_guild: usize,
    /// Deliveries of a bot job before it is given up.
    pub bot_max_attempts: u32,
    /// How long `submit` waits for a router.
    pub submit_timeout: Duration,
    /// How long a message id stays claimed (a resend within it is a duplicate), like the
    /// NATS stream's duplicate window.
    pub claim_window: Duration,
    /// Message-id claims kept at most; beyond it the oldest are dropped early.
    pub max_claims: usize,
    /// Bot jobs waiting for the bot worker; a job that finds the queue full is refused
    /// (the requester gets `bot_unavailable`).
    pub bot_queue: usize,
}

impl Default for MemoryBusConfig {
    fn default() -> Self {
        MemoryBusConfig {
            retain_per_guild: 10_000,
            bot_max_attempts: 3,
            submit_timeout: Duration::from_secs(10),
            claim_window: Duration::from_secs(120),
            max_claims: 100_000,
            bot_queue: 1024,
        }
    }
}

struct Claim {
    owner: String,
    seq: u64,
    at: Instant,
}

struct State {
    logs: HashMap<String, GuildLog>,
    claims: HashMap<String, Claim>,
    /// The claims in the order they were made, for pruning.
    claim_order: VecDeque<(Instant, String)>,
    /// Entries go out behind an `Arc`, one clone per subscriber.
    topics: HashMap<Topic, Fanout<Arc<LogEntry>>>,
}

/// A bot job waiting in the queue: the job, its delivery count so far plus one, and the span
/// that queued it.
type QueuedJob = (BotJob, u32, TraceContext);

/// The in-memory bus.
pub struct MemoryBus {
    config: MemoryBusConfig,
    state: Mutex<State>,
    ingress_tx: mpsc::Sender<IngressItem>,
    ingress_rx: Mutex<Option<mpsc::Receiver<IngressItem>>>,
    jobs_tx: mpsc::Sender<QueuedJob>,
    jobs_rx: Mutex<Option<mpsc::Receiver<QueuedJob>>>,
    events: broadcast::Sender<(String, UserEvent)>,
    /// Presence (issue #13).
    presence: Arc<crate::bus::memory_presence::MemoryPresence>,
}

impl MemoryBus {
    pub fn new(config: MemoryBusConfig) -> Arc<Self> {
        let (ingress_tx, ingress_rx) = mpsc::channel(1024);
        let (jobs_tx, jobs_rx) = mpsc::channel(config.bot_queue.max(1));
        Arc::new(MemoryBus {
            config,
            state: Mutex::new(State {
                logs: HashMap::new(),
                claims: HashMap::new(),
                claim_order: VecDeque::new(),
                topics: HashMap::new(),
            }),
            ingress_tx,
            ingress_rx: Mutex::new(Some(ingress_rx)),
            jobs_tx,
            jobs_rx: Mutex::new(Some(jobs_rx)),
            events: broadcast::channel(1024).0,
            presence: Arc::default(),
        })
    }

    /// Message-id claims held now.
    pub fn claims(&self) -> usize {
        self.state.lock().claims.len()
    }

    fn send_topic(&self, topic: &Topic, entry: &Arc<LogEntry>) {
        let mut state = self.state.lock();
        if let Some(fanout) = state.topics.get_mut(topic)
            && !fanout.publish(entry)
        {
            state.topics.remove(topic);
        }
    }
}

impl State {
    /// Drops the claims older than the window, and the oldest beyond the cap.
    fn prune_claims(&mut self, now: Instant, config: &MemoryBusConfig) {
        while let Some((at, _)) = self.claim_order.front() {
            let expired = now.saturating_duration_since(*at) > config.claim_window;
            if !expired && self.claim_order.len() <= config.max_claims {
                break;
            }
            if let Some((at, id)) = self.claim_order.pop_front()
                && self.claims.get(&id).is_some_and(|claim| claim.at == at)
            {
                self.claims.remove(&id);
            }
        }
    }
}

struct OneshotReply(oneshot::Sender<SendOutcome>);

#[async_trait::async_trait]
impl IngressReply for OneshotReply {
    async fn reply(self: Box<Self>, outcome: SendOutcome) {
        let _ = self.0.send(outcome);
    }
}

struct MemorySettle {
    job: Option<BotJob>,
    attempt: u32,
    max_attempts: u32,
    trace: TraceContext,
    jobs_tx: mpsc::Sender<QueuedJob>,
}

#[async_trait::async_trait]
impl JobSettle for MemorySettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }

    /// Delivers again, unless this was the last attempt: then the job is given up, as the
    /// NATS queue does after `max_deliver`.
    async fn retry(mut self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        if self.attempt >= self.max_attempts {
            return Ok(());
        }
        if let Some(job) = self.job.take() {
            let tx = self.jobs_tx.clone();
            let next = self.attempt + 1;
            let trace = std::mem::take(&mut self.trace);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send((job, next, trace)).await;
            });
        }
        Ok(())
    }

    async fn in_progress(&self) -> Result<(), BusError> {
        Ok(())
    }
}

/// The next seq of a guild: the current time in microseconds, or one more than the last when
/// that is larger. Seqs stay increasing across restarts of an embedded process, so a client's
/// resume position from before a restart never hides newer messages.
fn next_seq(last: u64) -> u64 {
    let now_micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now_micros.max(last + 1)
}

fn take_once<T>(slot: &Mutex<Option<T>>, what: &str) -> Result<T, BusError> {
    slot.lock()
        .take()
        .ok_or_else(|| BusError::Unavailable(format!("the in-memory {what} has one consumer")))
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn enqueue(&self, request: SendRequest) -> Result<Answer, BusError> {
        let (tx, rx) = oneshot::channel();
        let item = IngressItem {
            request,
            reply: Box::new(OneshotReply(tx)),
            trace: TraceContext::current(),
            deadline: std::time::Instant::now().checked_add(self.config.submit_timeout),
        };
        self.ingress_tx
            .send(item)
            .await
            .map_err(|_| BusError::Unavailable("no router is running".into()))?;
        let timeout = self.config.submit_timeout;
        Ok(Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(_)) => Ok(Err(ErrorCode::ServerError)),
                Err(_) => Err(BusError::Timeout),
            }
        }))
    }

    async fn ingress(&self) -> Result<BoxStream<IngressItem>, BusError> {
        let rx = take_once(&self.ingress_rx, "ingress")?;
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn append(&self, message: ChatMessage) -> Result<AppendOutcome, BusError> {
        let mut state = self.state.lock();
        if let Some(claim) = state.claims.get(&message.message_id) {
            return Ok(if claim.owner == message.from.id {
                AppendOutcome::Duplicate { seq: claim.seq }
            } else {
                AppendOutcome::ForeignId
            });
        }
        let log = state.logs.entry(message.guild_id.clone()).or_default();
        let entry = LogEntry {
            seq: next_seq(log.last_seq()),
            prev: log.last_seq(),
            message: Arc::new(message),
            trace: TraceContext::none(),
        };
        log.push(entry.clone(), self.config.retain_per_guild);
        let now = Instant::now();
        state.claims.insert(
            entry.message.message_id.clone(),
            Claim {
                owner: entry.message.from.id.clone(),
                seq: entry.seq,
                at: now,
            },
        );
        state
            .claim_order
            .push_back((now, entry.message.message_id.clone()));
        state.prune_claims(now, &self.config);
        Ok(AppendOutcome::Appended(entry))
    }

    async fn publish(&self, entry: &LogEntry) -> Result<(), BusError> {
        let entry = Arc::new(LogEntry {
            trace: TraceContext::current(),
            ..entry.clone()
        });
        self.send_topic(&Topic::Guild(entry.message.guild_id.clone()), &entry);
        if entry.message.admin_only {
            self.send_topic(&Topic::AdminOnly, &entry);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: Topic) -> Result<BoxStream<LogEntry>, BusError> {
        let entries = self
            .state
            .lock()
            .topics
            .entry(topic)
            .or_insert_with(|| Fanout::new(TOPIC_CAPACITY))
            .subscribe();
        Ok(Box::pin(entries.map(Arc::unwrap_or_clone)))
    }

    async fn read_after(
        &self,
        guild_id: &str,
        after: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Replay, BusError> {
        let state = self.state.lock();
        let Some(log) = state.logs.get(guild_id) else {
            return Ok(Replay::default());
        };
        let first_prev = (log.entries().front()).map_or(log.last_seq(), |e| e.prev);
        let mut replay = Replay {
            gap: first_prev > after,
            ..Replay::default()
        };
        for entry in log.entries().iter().filter(|e| e.seq > after) {
            if !visibility.admits(&entry.message) {
                continue;
            }
            if replay.entries.len() == limit {
                replay.more = true;
                break;
            }
            replay.entries.push(entry.clone());
        }
        Ok(replay)
    }

    /// Starts below `before` by binary search (the log is in seq order); a member's page walks
    /// only the visible entries ([`GuildLog::page`]).
    async fn read_history(
        &self,
        guild_id: &str,
        before: Option<u64>,
        limit: usize,
        visibility: Visibility,
    ) -> Result<HistoryPage, BusError> {
        let state = self.state.lock();
        let Some(log) = state.logs.get(guild_id) else {
            return Ok(HistoryPage::default());
        };
        Ok(log.page(before, limit, visibility))
    }

    async fn enqueue_bot_job(&self, job: BotJob) -> Result<(), BusError> {
        self.jobs_tx
            .try_send((job, 1, TraceContext::current()))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    BusError::Unavailable("the bot job queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    BusError::Unavailable("no bot worker queue".into())
                }
            })
    }

    async fn bot_jobs(&self) -> Result<BoxStream<BotDelivery>, BusError> {
        let rx = take_once(&self.jobs_rx, "bot queue")?;
        let jobs_tx = self.jobs_tx.clone();
        let max_attempts = self.config.bot_max_attempts;
        let stream = ReceiverStream::new(rx).map(move |(job, attempt, trace)| BotDelivery {
            job: job.clone(),
            attempt,
            max_attempts,
            settle: Box::new(MemorySettle {
                job: Some(job),
                attempt,
                max_attempts,
                trace: trace.clone(),
                jobs_tx: jobs_tx.clone(),
            }),
            trace,
        });
        Ok(Box::pin(stream))
    }

    async fn publish_user_event(&self, user_id: &str, event: UserEvent) -> Result<(), BusError> {
        let _ = self.events.send((user_id.to_owned(), event));
        Ok(())
    }

    async fn user_events(&self) -> Result<BoxStream<(String, UserEvent)>, BusError> {
        let rx = self.events.subscribe();
        Ok(Box::pin(
            BroadcastStream::new(rx).filter_map(|item| async move { item.ok() }),
        ))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    // Presence (issue #13).
    fn presence(&self) -> Option<crate::bus::presence::SharedPresenceBus> {
        Some(self.presence.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::identity::{Role, UserInfo};

    fn message(id: &str, from: &str) -> ChatMessage {
        ChatMessage {
            guild_id: "g".into(),
            message_id: id.into(),
            admin_only: false,
            from: UserInfo::new(from, from, Role::Member),
            text: "hi".into(),
            ts: "2026-12-01T00:00:00.000Z".into(),
        }
    }

    fn bus(tweak: impl FnOnce(&mut MemoryBusConfig)) -> Arc<MemoryBus> {
        let mut config = MemoryBusConfig::default();
        tweak(&mut config);
        MemoryBus::new(config)
    }

    #[tokio::test]
    async fn claims_are_kept_for_the_window_then_dropped() {
        let bus = bus(|c| c.claim_window = Duration::from_millis(100));
        bus.append(message("m1", "ann")).await.expect("append");
        let again = bus.append(message("m1", "ann")).await.expect("append");
        assert!(
            matches!(again, AppendOutcome::Duplicate { .. }),
            "within the window"
        );
        let stolen = bus.append(message("m1", "bob")).await.expect("append");
        assert!(matches!(stolen, AppendOutcome::ForeignId));
        tokio::time::sleep(Duration::from_millis(150)).await;
        for i in 0..100 {
            bus.append(message(&format!("n{i}"), "ann"))
                .await
                .expect("append");
        }
        assert_eq!(bus.claims(), 100, "m1's claim left with the window");
    }

    #[tokio::test]
    async fn claims_are_capped() {
        let bus = bus(|c| c.max_claims = 50);
        for i in 0..10_000 {
            bus.append(message(&format!("m{i}"), "ann"))
                .await
                .expect("append");
        }
        assert_eq!(bus.claims(), 50);
        let newest = bus.append(message("m9999", "ann")).await.expect("append");
        assert!(matches!(newest, AppendOutcome::Duplicate { .. }));
    }

    #[tokio::test]
    async fn a_full_bot_queue_refuses_the_job() {
        let bus = bus(|c| c.bot_queue = 2);
        let job = |seq| BotJob {
            v: INTERNAL_VERSION,
            seq,
            request: Arc::new(message("m", "ann")),
        };
        bus.enqueue_bot_job(job(1)).await.expect("room");
        bus.enqueue_bot_job(job(2)).await.expect("room");
        let full = bus.enqueue_bot_job(job(3)).await;
        assert!(matches!(full, Err(BusError::Unavailable(_))), "{full:?}");
    }
}
