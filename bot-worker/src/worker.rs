//! The job loop: bounded concurrency; on a job's first delivery the cost guard (over a quota:
//! `rate_limited` to the requester, no backend call); a timeout per attempt; retry with
//! exponential backoff (or the server's `Retry-After`) for transient failures; and
//! `bot_unavailable` to the requester alone after the last attempt or a permanent failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::{BotDelivery, BotJob, Bus, BusError, INTERNAL_VERSION, SendRequest};
use chat_shared::protocol::identity::UserInfo;
use chat_shared::protocol::validate::BOT_REPLY_SUFFIX;
use chat_shared::protocol::{ChatMessage, ErrorCode};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::guard::{CostDecision, CostGuard};
use crate::metrics::{BotMetrics, JobOutcome};
use crate::notice::tell_requester;
use crate::{Backend, BackendError};

/// The longest wait before a retry, whatever the backoff or the server asks for.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

/// How the worker runs its jobs.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Jobs answered at the same time by this worker.
    pub concurrency: usize,
    /// Longest wait for one answer (one attempt).
    pub job_timeout: Duration,
    /// First retry delay; doubles on each attempt.
    pub retry_base: Duration,
    /// Replies are cut to this many characters.
    pub max_reply_chars: usize,
    /// Per-user and per-guild quotas on bot requests.
    pub guard: CostGuard,
    pub metrics: Arc<BotMetrics>,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            concurrency: 5,
            job_timeout: Duration::from_secs(20),
            retry_base: Duration::from_secs(2),
            max_reply_chars: 2000,
            guard: CostGuard::default(),
            metrics: Arc::default(),
        }
    }
}

/// Takes jobs until `shutdown` fires, then lets the jobs in hand finish.
pub async fn run(
    bus: Arc<dyn Bus>,
    backend: Arc<dyn Backend>,
    config: BotConfig,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut jobs = bus.bot_jobs().await?;
    let concurrency = config.concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let config = Arc::new(config);
    tracing::info!(concurrency, "bot worker taking jobs");
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = jobs.next() => match next {
                Some(d) => d,
                None => break,
            },
        };
        let span = tracing::info_span!(
            "bot.job",
            message_id = %delivery.job.request.message_id,
            guild = %delivery.job.request.guild_id,
            attempt = delivery.attempt,
        );
        delivery.trace.set_parent_of(&span);
        let (bus, backend, config) = (bus.clone(), backend.clone(), config.clone());
        tokio::spawn(
            async move {
                handle(bus.as_ref(), backend.as_ref(), &config, delivery).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    let _ = permits.acquire_many(concurrency as u32).await;
    Ok(())
}

/// Answers one delivery and settles it.
async fn handle(bus: &dyn Bus, backend: &dyn Backend, config: &BotConfig, delivery: BotDelivery) {
    let BotDelivery {
        job,
        attempt,
        max_attempts,
        settle,
        trace: _,
    } = delivery;
    let outcome = match attempt_job(bus, backend, config, &job, attempt == 1).await {
        Ok(outcome) => outcome,
        Err(BackendError::Transient {
            reason,
            retry_after,
        }) if attempt < max_attempts => {
            let delay = retry_after
                .unwrap_or_else(|| backoff(config.retry_base, attempt))
                .min(MAX_RETRY_DELAY);
            tracing::info!(%reason, ?delay, "bot attempt failed; retrying");
            config.metrics.record(JobOutcome::Retried);
            if let Err(error) = settle.retry(delay).await {
                tracing::warn!(%error, "could not schedule the retry of a bot job");
            }
            return;
        }
        Err(error) => {
            tracing::warn!(%error, attempt, "bot gave up; telling the requester");
            tell_requester(bus, &job.request, ErrorCode::BotUnavailable).await;
            JobOutcome::Unavailable
        }
    };
    config.metrics.record(outcome);
    if let Err(error) = settle.ack().await {
        tracing::warn!(%error, "could not ack a bot job");
    }
}

/// One attempt: the cost guard on the first delivery, the answer within the timeout, the reply
/// posted. `Ok` when the job is done for good.
async fn attempt_job(
    bus: &dyn Bus,
    backend: &dyn Backend,
    config: &BotConfig,
    job: &BotJob,
    first_delivery: bool,
) -> Result<JobOutcome, BackendError> {
    if first_delivery {
        match config.guard.admit(&job.request).await {
            Ok(CostDecision::Admitted) => {}
            Ok(_) => {
                tell_requester(bus, &job.request, ErrorCode::RateLimited).await;
                return Ok(JobOutcome::RateLimited);
            }
            // Fail closed: without the shared counters there is no cost guard.
            Err(error) => return Err(BackendError::Permanent(error.to_string())),
        }
    }
    let started = Instant::now();
    let text = match tokio::time::timeout(config.job_timeout, backend.answer(job)).await {
        Ok(answer) => answer?,
        Err(_) => return Err(BackendError::transient("timed out")),
    };
    config
        .metrics
        .answer_seconds
        .observe(started.elapsed().as_secs_f64());
    let reply = cut(&text, config.max_reply_chars);
    post_reply(bus, &job.request, reply)
        .instrument(tracing::info_span!("bot.reply"))
        .await?;
    tracing::info!("bot reply posted");
    Ok(JobOutcome::Answered)
}

/// `base` doubled for each attempt after the first, without overflow.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    base.checked_mul(factor).unwrap_or(MAX_RETRY_DELAY)
}

/// Posts the reply through the router, as the bot, in the request's guild and visibility. The
/// router stores one message per messageId, so posting the same reply twice shows it once.
async fn post_reply(
    bus: &dyn Bus,
    request: &ChatMessage,
    text: String,
) -> Result<(), BackendError> {
    let reply = SendRequest {
        v: INTERNAL_VERSION,
        sender: UserInfo::bot(),
        guild_id: Some(request.guild_id.clone()),
        text: Some(text),
        admin_only: request.admin_only,
        request_bot: false,
        message_id: Some(format!("{}{BOT_REPLY_SUFFIX}", request.message_id)),
        member_verified: true,
    };
    match bus.submit(reply).await {
        Ok(Ok(_ack)) => Ok(()),
        Ok(Err(code)) if code == ErrorCode::ServerError => {
            Err(BackendError::transient(format!("router answered {code}")))
        }
        Ok(Err(code)) => Err(BackendError::Permanent(format!(
            "router refused the reply: {code}"
        ))),
        Err(error) => Err(BackendError::transient(error.to_string())),
    }
}

/// The text cut to `max` characters (an ellipsis marks the cut); blank text gets a fixed reply.
fn cut(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "I have no answer to that.".to_owned();
    }
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_never_overflows() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 3), Duration::from_secs(8));
        assert_eq!(backoff(Duration::MAX, 2), MAX_RETRY_DELAY);
    }

    #[test]
    fn replies_are_cut_to_the_limit() {
        assert_eq!(cut("  hi  ", 10), "hi");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("   ", 4), "I have no answer to that.");
    }
}
