//! [`InstrumentedBus`]: a [`Bus`] that times every call of the bus it wraps
//! (`chat_bus_call_duration_seconds{op}`, `chat_bus_call_errors_total{op}`). Calls that open a
//! stream are timed until the stream is open, not per item; a bot job's settle calls (ack,
//! retry, progress) are timed one by one.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bus::*;
use crate::protocol::ChatMessage;
use crate::telemetry::calls::CallMetrics;

/// The bus operations, in the order of [`OPS`].
#[derive(Debug, Clone, Copy)]
enum Op {
    Submit,
    Ingress,
    Append,
    Publish,
    Subscribe,
    ReadAfter,
    ReadBefore,
    EnqueueBotJob,
    BotJobs,
    JobAck,
    JobRetry,
    JobInProgress,
    PublishUserEvent,
    UserEvents,
    Ping,
}

/// The `op` label of each [`Op`].
const OPS: [&str; 15] = [
    "submit",
    "ingress",
    "append",
    "publish",
    "subscribe",
    "read_after",
    "read_before",
    "enqueue_bot_job",
    "bot_jobs",
    "job_ack",
    "job_retry",
    "job_in_progress",
    "publish_user_event",
    "user_events",
    "ping",
];

/// 50 µs to about 6.5 s: loopback round trips up to the longest bus timeout (5 s ingress).
fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// A bus whose calls are timed.
pub struct InstrumentedBus {
    inner: Arc<dyn Bus>,
    calls: Arc<CallMetrics>,
}

impl InstrumentedBus {
    /// Wraps `inner`, registering the `chat_bus_*` metrics in `registry`.
    pub fn wrap(inner: Arc<dyn Bus>, registry: &mut Registry) -> Arc<dyn Bus> {
        let calls = CallMetrics::register(registry, "chat_bus", "Bus", &OPS, histogram);
        Arc::new(InstrumentedBus {
            inner,
            calls: Arc::new(calls),
        })
    }

    async fn time<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, BusError>>,
    ) -> Result<T, BusError> {
        self.calls.time(op as usize, call).await
    }
}

#[async_trait::async_trait]
impl Bus for InstrumentedBus {
    async fn enqueue(&self, request: SendRequest) -> Result<Answer, BusError> {
        // Timed from the hand-over to the answer.
        let started = std::time::Instant::now();
        let answer = match self.inner.enqueue(request).await {
            Ok(answer) => answer,
            Err(error) => return self.calls.timed(Op::Submit as usize, started, Err(error)),
        };
        let calls = self.calls.clone();
        Ok(Box::pin(async move {
            let outcome = answer.await;
            calls.timed(Op::Submit as usize, started, outcome)
        }))
    }

    async fn ingress(&self) -> Result<BoxStream<IngressItem>, BusError> {
        self.time(Op::Ingress, self.inner.ingress()).await
    }

    async fn release_ingress(&self) {
        self.inner.release_ingress().await
    }

    async fn append(&self, message: ChatMessage) -> Result<AppendOutcome, BusError> {
        self.time(Op::Append, self.inner.append(message)).await
    }

    async fn append_batch(
        &self,
        messages: Vec<ChatMessage>,
    ) -> Vec<Result<AppendOutcome, BusError>> {
        // One call, counted as an error when any of its messages failed.
        let call = async {
            let outcomes = self.inner.append_batch(messages).await;
            if outcomes.iter().any(Result::is_err) {
                Err(outcomes)
            } else {
                Ok(outcomes)
            }
        };
        match self.calls.time(Op::Append as usize, call).await {
            Ok(outcomes) | Err(outcomes) => outcomes,
        }
    }

    async fn publish(&self, entry: &LogEntry) -> Result<(), BusError> {
        self.time(Op::Publish, self.inner.publish(entry)).await
    }

    async fn publish_batch(&self, entries: &[LogEntry]) -> Result<(), BusError> {
        self.time(Op::Publish, self.inner.publish_batch(entries))
            .await
    }

    async fn subscribe(&self, topic: Topic) -> Result<BoxStream<LogEntry>, BusError> {
        self.time(Op::Subscribe, self.inner.subscribe(topic)).await
    }

    async fn read_after(
        &self,
        guild_id: &str,
        after: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Replay, BusError> {
        let call = self.inner.read_after(guild_id, after, limit, visibility);
        self.time(Op::ReadAfter, call).await
    }

    async fn read_before(
        &self,
        guild_id: &str,
        before: Option<u64>,
        limit: usize,
        visibility: Visibility,
    ) -> Result<(Vec<LogEntry>, bool), BusError> {
        let call = self.inner.read_before(guild_id, before, limit, visibility);
        self.time(Op::ReadBefore, call).await
    }

    async fn read_history(
        &self,
        guild_id: &str,
        before: Option<u64>,
        limit: usize,
        visibility: Visibility,
    ) -> Result<HistoryPage, BusError> {
        let call = self.inner.read_history(guild_id, before, limit, visibility);
        self.time(Op::ReadBefore, call).await
    }

    async fn enqueue_bot_job(&self, job: BotJob) -> Result<(), BusError> {
        self.time(Op::EnqueueBotJob, self.inner.enqueue_bot_job(job))
            .await
    }

    async fn bot_jobs(&self) -> Result<BoxStream<BotDelivery>, BusError> {
        let jobs = self.time(Op::BotJobs, self.inner.bot_jobs()).await?;
        let calls = self.calls.clone();
        Ok(Box::pin(jobs.map(move |delivery| BotDelivery {
            settle: Box::new(TimedSettle {
                inner: delivery.settle,
                calls: calls.clone(),
            }),
            ..delivery
        })))
    }

    async fn publish_user_event(&self, user_id: &str, event: UserEvent) -> Result<(), BusError> {
        let call = self.inner.publish_user_event(user_id, event);
        self.time(Op::PublishUserEvent, call).await
    }

    async fn user_events(&self) -> Result<BoxStream<(String, UserEvent)>, BusError> {
        self.time(Op::UserEvents, self.inner.user_events()).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.time(Op::Ping, self.inner.ping()).await
    }

    // Presence (issue #13): not timed, the channel is handed out once.
    fn presence(&self) -> Option<crate::bus::presence::SharedPresenceBus> {
        self.inner.presence()
    }
}

/// A bot job's settle calls, timed.
struct TimedSettle {
    inner: Box<dyn JobSettle>,
    calls: Arc<CallMetrics>,
}

#[async_trait::async_trait]
impl JobSettle for TimedSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        let TimedSettle { inner, calls } = *self;
        calls.time(Op::JobAck as usize, inner.ack()).await
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        let TimedSettle { inner, calls } = *self;
        calls.time(Op::JobRetry as usize, inner.retry(delay)).await
    }

    // Written out rather than `async fn`: the boxed settle is `Send` but not `Sync`, so the
    // future may hold the inner call's future but not `&self`.
    fn in_progress<'settle, 'call>(
        &'settle self,
    ) -> Pin<Box<dyn Future<Output = Result<(), BusError>> + Send + 'call>>
    where
        'settle: 'call,
        Self: 'call,
    {
        let call = self.inner.in_progress();
        let calls = self.calls.clone();
        Box::pin(async move { calls.time(Op::JobInProgress as usize, call).await })
    }
}
