//! The bot worker as a library: takes jobs from the bus's durable work queue, checks the cost
//! guard (per-user and per-guild rate limits), asks a [`Backend`] for the answer — the built-in
//! [`CommandBot`], or an OpenAI-compatible language model ([`LlmBot`]) — and posts it through
//! the router as the bot identity with messageId `{request id}-bot` (so a redelivered job still
//! shows one reply). When the last attempt fails, only the requester is told `bot_unavailable`.
//! Configuration is [`BotArgs`], shared by the `bot-worker` binary and the embedded gateway.

mod args;
mod commands;
mod guard;
mod llm;
mod metrics;
mod notice;
mod worker;

pub use args::{BotArgs, SetupError};
pub use commands::{CommandBot, FALLBACK_TEXT};
pub use guard::{CostDecision, CostGuard};
pub use llm::{LlmBot, LlmSettings, PromptLimits, UNREADABLE_ANSWER_TEXT};
pub use metrics::{BotMetrics, JobOutcome, LlmMetrics};
pub use worker::{BotConfig, run};

use std::time::Duration;

use chat_shared::bus::BotJob;
use prometheus_client::registry::Registry;

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Worth another attempt (timeouts, connection failures, 429, 5xx), after `retry_after`
    /// when the server said how long to wait.
    #[error("transient: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again (4xx other than 429).
    #[error("permanent: {0}")]
    Permanent(String),
}

impl BackendError {
    /// A transient failure with no advice on when to retry.
    pub fn transient(reason: impl Into<String>) -> Self {
        BackendError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Something that answers a bot request (the job carries the request and its log position).
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn answer(&self, job: &BotJob) -> Result<String, BackendError>;

    /// Registers the backend's own metrics (the language-model bot's request durations).
    fn register_metrics(&self, _registry: &mut Registry) {}
}
