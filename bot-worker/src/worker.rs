//! The job loop: bounded concurrency, a timeout per attempt, retry with exponential backoff
//! for transient failures, and `bot_unavailable` to the requester alone after the last attempt.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::{BotDelivery, Bus, BusError, INTERNAL_VERSION, SendRequest, UserEvent};
use chat_shared::identity::UserInfo;
use chat_shared::protocol::{ErrorCode, ErrorFrame};
use chat_shared::validate::BOT_REPLY_SUFFIX;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Backend, BackendError};

/// How the worker runs its jobs.
#[derive(Debug, Clone, Copy)]
pub struct BotConfig {
    /// Jobs answered at the same time by this worker.
    pub concurrency: usize,
    /// Longest wait for one answer.
    pub job_timeout: Duration,
    /// First retry delay; doubles on each attempt.
    pub retry_base: Duration,
    /// Replies are cut to this many characters.
    pub max_reply_chars: usize,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            concurrency: 5,
            job_timeout: Duration::from_secs(20),
            retry_base: Duration::from_secs(2),
            max_reply_chars: 2000,
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
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    tracing::info!(concurrency = config.concurrency, "bot worker taking jobs");
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
            "bot_job",
            message_id = %delivery.job.request.message_id,
            guild = %delivery.job.request.guild_id,
            attempt = delivery.attempt,
        );
        let (bus, backend) = (bus.clone(), backend.clone());
        tokio::spawn(
            async move {
                handle(bus.as_ref(), backend.as_ref(), &config, delivery).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    let _ = permits.acquire_many(config.concurrency.max(1) as u32).await;
    Ok(())
}

/// Answers one delivery and settles it.
async fn handle(bus: &dyn Bus, backend: &dyn Backend, config: &BotConfig, delivery: BotDelivery) {
    let BotDelivery {
        job,
        attempt,
        max_attempts,
        settle,
    } = delivery;
    let answer = match tokio::time::timeout(config.job_timeout, backend.answer(&job.request)).await
    {
        Ok(result) => result,
        Err(_) => Err(BackendError::Transient("timed out".into())),
    };
    let posted = match answer {
        Ok(text) => post_reply(bus, &job.request, cut(&text, config.max_reply_chars)).await,
        Err(error) => Err(error),
    };
    let settled = match posted {
        Ok(()) => settle.ack().await,
        Err(BackendError::Transient(reason)) if attempt < max_attempts => {
            let delay = config.retry_base * 2u32.saturating_pow(attempt.saturating_sub(1));
            tracing::info!(%reason, ?delay, "bot attempt failed; retrying");
            settle.retry(delay).await
        }
        Err(error) => {
            tracing::warn!(%error, "bot gave up; telling the requester");
            tell_unavailable(
                bus,
                &job.request.from.id,
                &job.request.message_id,
                &job.request.guild_id,
            )
            .await;
            settle.ack().await
        }
    };
    if let Err(error) = settled {
        tracing::warn!(%error, "could not settle bot job");
    }
}

/// Posts the reply through the router, as the bot, in the request's guild and visibility.
async fn post_reply(
    bus: &dyn Bus,
    request: &chat_shared::protocol::ChatMessage,
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
            Err(BackendError::Transient(format!("router answered {code}")))
        }
        Ok(Err(code)) => Err(BackendError::Permanent(format!(
            "router refused the reply: {code}"
        ))),
        Err(error) => Err(BackendError::Transient(error.to_string())),
    }
}

async fn tell_unavailable(bus: &dyn Bus, user_id: &str, message_id: &str, guild_id: &str) {
    let frame = ErrorFrame {
        message_id: Some(message_id.to_owned()),
        guild_id: Some(guild_id.to_owned()),
        ..ErrorFrame::new(ErrorCode::BotUnavailable, None)
    };
    if let Err(error) = bus
        .publish_user_event(user_id, UserEvent::Notice { frame })
        .await
    {
        tracing::warn!(%error, "could not tell the requester the bot is unavailable");
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
