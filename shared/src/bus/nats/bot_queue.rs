//! The bot work queue: stream `BOT_JOBS` (work-queue retention) and the durable pull consumer
//! `bot-workers` that every bot worker shares. A job is acked when done, nak'ed with a delay to
//! retry, and redelivered after the ack wait when its worker died, up to `max_deliver` times.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::Acker;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::NatsBus;
use super::connection::ensure_connected;
use super::errors::{from_publish, unavailable};
use super::payload::{DropCounters, DropKind, decode, encode};
use super::subjects::BOT_JOBS_SUBJECT;
use super::trace_headers;
use crate::bus::{BotDelivery, BotJob, BoxStream, BusError, JobSettle};
use std::sync::Arc;

/// Jobs a worker pulls per request: one, so that jobs wait on the server (where any worker
/// can take them), not in one worker's buffer while their ack wait runs.
const PULL_BATCH: usize = 1;
/// How long one pull request waits on the server for a job.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// Heartbeat of a pull request, to notice a lost one.
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);
/// Pause before pulling again after the pull stream failed.
const REPULL_DELAY: Duration = Duration::from_millis(500);

impl NatsBus {
    #[tracing::instrument(name = "bus.enqueue_bot_job", skip_all,
        fields(message_id = %job.request.message_id, seq = job.seq))]
    pub(super) async fn enqueue_job(&self, job: BotJob) -> Result<(), BusError> {
        ensure_connected(&self.client)?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, format!("{}-job", job.request.message_id));
        trace_headers::add_current(&mut headers);
        self.js
            .publish_with_headers(BOT_JOBS_SUBJECT, headers, encode(&job)?)
            .await
            .map_err(|e| from_publish("queueing a bot job", &e))?
            .await
            .map_err(|e| from_publish("queueing a bot job", &e))?;
        Ok(())
    }

    pub(super) async fn job_deliveries(&self) -> Result<BoxStream<BotDelivery>, BusError> {
        let (tx, rx) = mpsc::channel(1);
        let pump = JobPump {
            consumer: self.bot_consumer.clone(),
            drops: self.drops.clone(),
            max_attempts: self.config.bot_max_attempts(),
            tx,
        };
        tokio::spawn(pump.run());
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// Pulls jobs for one `bot_jobs()` stream until that stream is dropped, pulling again after
/// any failure (a server restart, a lost pull request).
struct JobPump {
    consumer: PullConsumer,
    drops: Arc<DropCounters>,
    max_attempts: u32,
    tx: mpsc::Sender<BotDelivery>,
}

impl JobPump {
    async fn run(self) {
        loop {
            if let Err(error) = self.pull_until_failure().await {
                tracing::warn!(%error, "bot job pull failed; pulling again");
            }
            tokio::select! {
                _ = self.tx.closed() => return,
                _ = tokio::time::sleep(REPULL_DELAY) => {}
            }
        }
    }

    /// Forwards jobs; `Ok` when the stream was dropped, `Err` when pulling must restart.
    async fn pull_until_failure(&self) -> Result<(), BusError> {
        let mut messages = self
            .consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await
            .map_err(|e| unavailable("pulling bot jobs", e))?;
        loop {
            let next = tokio::select! {
                _ = self.tx.closed() => return Ok(()),
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(unavailable("pulling bot jobs", e)),
                None => return Err(BusError::Unavailable("the bot job pull ended".into())),
            };
            if let Some(delivery) = self.delivery(message).await
                && self.tx.send(delivery).await.is_err()
            {
                return Ok(());
            }
        }
    }

    /// The job as a delivery; a job that does not decode is terminated (never redelivered).
    async fn delivery(&self, message: async_nats::jetstream::Message) -> Option<BotDelivery> {
        let attempt = message
            .info()
            .map(|info| u32::try_from(info.delivered).unwrap_or(1))
            .unwrap_or(1);
        match decode::<BotJob>(&message.payload) {
            Ok(job) => {
                let trace = trace_headers::extract(message.headers.as_ref());
                let (_, acker) = message.split();
                Some(BotDelivery {
                    job,
                    attempt,
                    max_attempts: self.max_attempts,
                    settle: Box::new(NatsSettle { acker }),
                    trace,
                })
            }
            Err(error) => {
                self.drops
                    .record(DropKind::BotJobs, message.subject.as_str(), &error);
                if let Err(error) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(%error, "could not terminate an undecodable bot job");
                }
                None
            }
        }
    }
}

/// Settles one delivered job.
struct NatsSettle {
    acker: Acker,
}

#[async_trait::async_trait]
impl JobSettle for NatsSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.acker
            .double_ack()
            .await
            .map_err(|e| unavailable("acking a bot job", e))
    }

    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        self.acker
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| unavailable("retrying a bot job", e))
    }

    async fn in_progress(&self) -> Result<(), BusError> {
        self.acker
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| unavailable("extending a bot job", e))
    }
}
