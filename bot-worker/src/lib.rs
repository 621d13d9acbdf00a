//! The bot worker as a library: takes jobs from the bus's durable work queue, asks a
//! [`Backend`] for the answer, and posts it through the router as the bot identity with
//! messageId `{request id}-bot` (so a redelivered job still shows one reply). When the last
//! attempt fails, only the requester is told `bot_unavailable`.

mod commands;
mod worker;

pub use commands::CommandBot;
pub use worker::{BotConfig, run};

use chat_shared::protocol::ChatMessage;

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Worth another attempt (timeouts, connection failures, 429, 5xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Will fail again (4xx other than 429).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Something that answers a bot request.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn answer(&self, request: &ChatMessage) -> Result<String, BackendError>;
}
