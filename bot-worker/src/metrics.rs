//! The bot worker's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// How a job attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The reply is in the guild.
    Answered,
    /// Failed for now; the job comes back after a delay.
    Retried,
    /// Given up; the requester got `bot_unavailable`.
    Unavailable,
    /// Over a quota; the requester got `rate_limited`.
    RateLimited,
}

impl JobOutcome {
    fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Answered => "answered",
            JobOutcome::Retried => "retried",
            JobOutcome::Unavailable => "unavailable",
            JobOutcome::RateLimited => "rate_limited",
        }
    }
}

/// Counters and timings of bot jobs.
#[derive(Debug)]
pub struct BotMetrics {
    /// Job attempts, by outcome.
    pub jobs: Family<Labels, Counter>,
    /// Time a backend took to answer (successful answers only).
    pub answer_seconds: Histogram,
}

impl BotMetrics {
    /// Metrics registered under `chat_bot_` in `registry`.
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = BotMetrics {
            jobs: Family::default(),
            answer_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        };
        let sub = registry.sub_registry_with_prefix("chat_bot");
        sub.register("jobs", "Bot job attempts, by outcome", metrics.jobs.clone());
        sub.register(
            "answer_seconds",
            "Time a backend took to answer a bot request",
            metrics.answer_seconds.clone(),
        );
        metrics
    }

    pub fn record(&self, outcome: JobOutcome) {
        self.jobs
            .get_or_create(&vec![("outcome", outcome.as_str().to_owned())])
            .inc();
    }
}

impl Default for BotMetrics {
    fn default() -> Self {
        Self::registered(&mut Registry::default())
    }
}
