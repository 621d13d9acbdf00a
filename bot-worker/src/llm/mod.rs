//! The language-model backend: commands (`/help`, …) are still answered by the command bot;
//! anything else goes to an OpenAI-compatible chat-completions server (hosted, llama.cpp,
//! vLLM, Ollama …) with the guild's recent messages as context. The context is read with the
//! request's own visibility, so a normal request never carries an admin-only message to the
//! model — whatever any message in the context asks the model to do.

mod client;
mod context;
mod prompt;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::{BotJob, Bus};
use prometheus_client::registry::Registry;

pub use client::ChatCompletions;
pub use prompt::{DEFAULT_CONTEXT_MESSAGES, DEFAULT_MAX_PROMPT_CHARS, PromptLimits};
pub use wire::UNREADABLE_ANSWER_TEXT;

use crate::commands::CommandBot;
use crate::metrics::LlmMetrics;
use crate::{Backend, BackendError, SetupError};

/// How to reach the model and how much to send it.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// The API base, e.g. `http://127.0.0.1:11434/v1`; requests go to `{base}/chat/completions`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    pub model: String,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Longest wait for the server to accept the connection.
    pub connect_timeout: Duration,
    pub prompt: PromptLimits,
}

/// The language-model bot.
pub struct LlmBot {
    bus: Arc<dyn Bus>,
    client: ChatCompletions,
    limits: PromptLimits,
    metrics: LlmMetrics,
}

impl LlmBot {
    /// A bot that reads context from `bus` and asks the server of `settings`.
    pub fn new(bus: Arc<dyn Bus>, settings: &LlmSettings) -> Result<Self, SetupError> {
        Ok(LlmBot {
            bus,
            client: ChatCompletions::new(settings)?,
            limits: settings.prompt,
            metrics: LlmMetrics::new(),
        })
    }
}

#[async_trait::async_trait]
impl Backend for LlmBot {
    async fn answer(&self, job: &BotJob) -> Result<String, BackendError> {
        if let Some(reply) = CommandBot::command_reply(&job.request) {
            return Ok(reply);
        }
        let context =
            context::recent_messages(self.bus.as_ref(), job, self.limits.context_messages)
                .await
                .map_err(|e| BackendError::transient(format!("reading the context: {e}")))?;
        let messages = prompt::build(&job.request, &context, &self.limits);
        let started = Instant::now();
        let answer = self.client.complete(&messages).await;
        self.metrics
            .observe(answer.is_ok(), started.elapsed().as_secs_f64());
        answer
    }

    fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }
}
