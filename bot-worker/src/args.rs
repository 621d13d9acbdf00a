//! The bot's settings as a clap argument group — every one a flag and an environment variable,
//! shown in `--help` — shared by the `bot-worker` binary and the gateway's embedded mode, and
//! turned into a backend and a job configuration here.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::Bus;
use chat_shared::store::rate_limit::{MemoryRateLimiter, RateLimiter};
use clap::Args;

use crate::guard::{CostGuard, DEFAULT_GUILD_RATE_PER_MIN, DEFAULT_USER_RATE_PER_MIN};
use crate::llm::{
    DEFAULT_CONTEXT_MESSAGES, DEFAULT_MAX_PROMPT_CHARS, LlmBot, LlmSettings, PromptLimits,
};
use crate::{Backend, BotConfig, CommandBot};

/// The longest wait for a model server to accept a connection (less when the job timeout is
/// shorter).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the bot: job handling, the language model, and the cost guard.
#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    /// Bot jobs answered at the same time by one worker.
    #[arg(long, env = "BOT_CONCURRENCY", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub bot_concurrency: u32,
    /// Longest wait for one answer (one attempt), in milliseconds.
    #[arg(long, env = "BOT_JOB_TIMEOUT_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub bot_job_timeout_ms: u64,
    /// First retry delay in milliseconds; doubles on each attempt (a 429/503 `Retry-After`
    /// wins).
    #[arg(long, env = "BOT_RETRY_BASE_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub bot_retry_base_ms: u64,
    /// OpenAI-compatible API base, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1
    /// (Ollama); requests go to {base}/chat/completions. Unset or empty: the built-in command
    /// bot answers.
    #[arg(long, env = "BOT_LLM_BASE_URL")]
    pub bot_llm_base_url: Option<String>,
    /// API key, sent as `Authorization: Bearer <key>` (local servers usually need none).
    #[arg(long, env = "BOT_LLM_API_KEY", hide_env_values = true)]
    pub bot_llm_api_key: Option<String>,
    /// Model name (empty: the default).
    #[arg(long, env = "BOT_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub bot_llm_model: String,
    /// Most tokens in one answer.
    #[arg(long, env = "BOT_LLM_MAX_TOKENS", default_value_t = 180,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub bot_llm_max_tokens: u32,
    /// Sampling temperature, 0 to 2.
    #[arg(long, env = "BOT_LLM_TEMPERATURE", default_value_t = 0.7, value_parser = parse_temperature)]
    pub bot_llm_temperature: f32,
    /// Recent guild messages sent to the model as context (0: none). Admin-only messages only
    /// for an admin-only request.
    #[arg(long, env = "BOT_CONTEXT_MESSAGES", default_value_t = DEFAULT_CONTEXT_MESSAGES as u32,
          value_parser = clap::value_parser!(u32).range(0..=200))]
    pub bot_context_messages: u32,
    /// Most characters in a whole prompt (system prompt, context and request); the context is
    /// cut first, then the request.
    #[arg(long, env = "BOT_MAX_PROMPT_CHARS", default_value_t = DEFAULT_MAX_PROMPT_CHARS as u32,
          value_parser = clap::value_parser!(u32).range(500..=1_000_000))]
    pub bot_max_prompt_chars: u32,
    /// Bot requests allowed per user per minute (counted in Redis, across all workers, when
    /// REDIS_URL is set).
    #[arg(long, env = "BOT_USER_RATE_PER_MIN", default_value_t = DEFAULT_USER_RATE_PER_MIN,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub bot_user_rate_per_min: u32,
    /// Bot requests allowed per guild per minute.
    #[arg(long, env = "BOT_GUILD_RATE_PER_MIN", default_value_t = DEFAULT_GUILD_RATE_PER_MIN,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub bot_guild_rate_per_min: u32,
}

/// Settings that cannot work, found at start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "BOT_LLM_BASE_URL must be an http:// or https:// URL such as http://127.0.0.1:11434/v1, not {0:?}"
    )]
    BadBaseUrl(String),
    #[error("BOT_LLM_API_KEY contains characters that cannot be sent in an HTTP header")]
    BadApiKey,
    #[error("cannot set up TLS for the model server: {0}")]
    Tls(String),
}

impl BotArgs {
    /// The language-model settings; `None` when no base URL is set.
    pub fn llm_settings(&self) -> Option<LlmSettings> {
        let base_url = non_empty(self.bot_llm_base_url.as_deref())?;
        let model = non_empty(Some(&self.bot_llm_model)).unwrap_or("gpt-4o-mini");
        Some(LlmSettings {
            base_url: base_url.to_owned(),
            api_key: non_empty(self.bot_llm_api_key.as_deref()).map(str::to_owned),
            model: model.to_owned(),
            max_tokens: self.bot_llm_max_tokens,
            temperature: self.bot_llm_temperature,
            connect_timeout: self.job_timeout().min(MAX_CONNECT_TIMEOUT),
            prompt: PromptLimits {
                context_messages: self.bot_context_messages as usize,
                max_prompt_chars: self.bot_max_prompt_chars as usize,
            },
        })
    }

    /// The backend asked for: the language model when a base URL is set, else the command bot.
    pub fn backend(&self, bus: Arc<dyn Bus>) -> Result<Arc<dyn Backend>, SetupError> {
        Ok(match self.llm_settings() {
            Some(settings) => Arc::new(LlmBot::new(bus, &settings)?),
            None => Arc::new(CommandBot),
        })
    }

    /// How jobs run, with the quotas counted in `limiter`.
    pub fn config(&self, limiter: Arc<dyn RateLimiter>, max_reply_chars: usize) -> BotConfig {
        BotConfig {
            concurrency: self.bot_concurrency as usize,
            job_timeout: self.job_timeout(),
            retry_base: Duration::from_millis(self.bot_retry_base_ms),
            max_reply_chars,
            guard: CostGuard::new(
                limiter,
                self.bot_user_rate_per_min,
                self.bot_guild_rate_per_min,
            ),
            metrics: Arc::default(),
        }
    }

    /// Backend and job configuration for embedded mode (one process: quotas in memory).
    pub fn embedded(
        &self,
        bus: Arc<dyn Bus>,
        max_reply_chars: usize,
    ) -> Result<(Arc<dyn Backend>, BotConfig), SetupError> {
        let config = self.config(Arc::new(MemoryRateLimiter::new()), max_reply_chars);
        Ok((self.backend(bus)?, config))
    }

    /// The backend in one line for the start-up log (never the key).
    pub fn describe(&self) -> String {
        match self.llm_settings() {
            Some(s) => format!(
                "language model {} at {} (key {}), max_tokens {}, temperature {}, context {} messages, prompt ≤ {} chars",
                s.model,
                s.base_url,
                if s.api_key.is_some() { "set" } else { "unset" },
                s.max_tokens,
                s.temperature,
                s.prompt.context_messages,
                s.prompt.max_prompt_chars,
            ),
            None => "built-in command bot (BOT_LLM_BASE_URL unset)".to_owned(),
        }
    }

    fn job_timeout(&self) -> Duration {
        Duration::from_millis(self.bot_job_timeout_ms)
    }
}

/// The value when it is set and not blank (container environments often pass `VAR=`).
fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn parse_temperature(value: &str) -> Result<f32, String> {
    match value.trim().parse::<f32>() {
        Ok(t) if (0.0..=2.0).contains(&t) => Ok(t),
        _ => Err(format!(
            "BOT_LLM_TEMPERATURE must be a number from 0 to 2, not {value:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bot: BotArgs,
    }

    fn parse(args: &[&str]) -> Result<BotArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bot").chain(args.iter().copied())).map(|c| c.bot)
    }

    #[test]
    fn defaults_are_the_original_bot_with_limits() {
        let args = parse(&[]).unwrap();
        assert!(args.llm_settings().is_none(), "no base URL: command bot");
        let args = parse(&["--bot-llm-base-url", "http://127.0.0.1:11434/v1"]).unwrap();
        let s = args.llm_settings().unwrap();
        assert_eq!(s.model, "gpt-4o-mini");
        assert_eq!(s.max_tokens, 180);
        assert!((s.temperature - 0.7).abs() < f32::EPSILON);
        assert_eq!(s.prompt, PromptLimits::default());
        assert_eq!(args.bot_user_rate_per_min, 10);
        assert_eq!(args.bot_guild_rate_per_min, 60);
    }

    #[test]
    fn blank_values_mean_unset() {
        let args = parse(&["--bot-llm-base-url", " ", "--bot-llm-model", ""]).unwrap();
        assert!(args.llm_settings().is_none());
        let args = parse(&[
            "--bot-llm-base-url",
            "http://h/v1",
            "--bot-llm-model",
            "",
            "--bot-llm-api-key",
            "",
        ])
        .unwrap();
        let s = args.llm_settings().unwrap();
        assert_eq!(s.model, "gpt-4o-mini");
        assert!(s.api_key.is_none());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--bot-llm-temperature", "3"]).is_err());
        assert!(parse(&["--bot-max-prompt-chars", "10"]).is_err());
        assert!(parse(&["--bot-user-rate-per-min", "0"]).is_err());
    }

    #[test]
    fn the_key_is_never_described() {
        let args = parse(&[
            "--bot-llm-base-url",
            "http://h/v1",
            "--bot-llm-api-key",
            "sk-secret",
        ])
        .unwrap();
        assert!(!args.describe().contains("sk-secret"));
        assert!(args.describe().contains("key set"));
    }
}
