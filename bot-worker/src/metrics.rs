//! The bot worker's Prometheus metrics: `chat_bot_jobs_total{outcome}`,
//! `chat_bot_answer_duration_seconds` (any backend) and
//! `chat_bot_llm_request_duration_seconds{outcome}` (the language-model server's requests).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;
type OutcomeLabel = [(&'static str, &'static str); 1];

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
        for outcome in [
            JobOutcome::Answered,
            JobOutcome::Retried,
            JobOutcome::Unavailable,
            JobOutcome::RateLimited,
        ] {
            let _ = metrics.jobs.get_or_create(&label(outcome));
        }
        let sub = registry.sub_registry_with_prefix("chat_bot");
        sub.register("jobs", "Bot job attempts, by outcome", metrics.jobs.clone());
        sub.register_with_unit(
            "answer_duration",
            "Time a backend took to answer a bot request",
            Unit::Seconds,
            metrics.answer_seconds.clone(),
        );
        metrics
    }

    pub fn record(&self, outcome: JobOutcome) {
        self.jobs.get_or_create(&label(outcome)).inc();
    }
}

fn label(outcome: JobOutcome) -> Labels {
    vec![("outcome", outcome.as_str().to_owned())]
}

impl Default for BotMetrics {
    fn default() -> Self {
        Self::registered(&mut Registry::default())
    }
}

/// Durations of the requests to the language-model server, by outcome (`ok` or `error`).
#[derive(Debug, Clone)]
pub struct LlmMetrics {
    family: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    ok: Histogram,
    error: Histogram,
}

impl LlmMetrics {
    pub fn new() -> Self {
        let family = Family::<OutcomeLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            llm_histogram,
        );
        LlmMetrics {
            ok: family.get_or_create_owned(&[("outcome", "ok")]),
            error: family.get_or_create_owned(&[("outcome", "error")]),
            family,
        }
    }

    /// Registers `chat_bot_llm_request_duration_seconds{outcome}` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry
            .sub_registry_with_prefix("chat_bot")
            .register_with_unit(
                "llm_request_duration",
                "Requests to the language-model server, by outcome (ok or error)",
                Unit::Seconds,
                self.family.clone(),
            );
    }

    pub fn observe(&self, ok: bool, seconds: f64) {
        if ok { &self.ok } else { &self.error }.observe(seconds);
    }
}

impl Default for LlmMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// 10 ms to about 160 s: small local models on a CPU are slow.
fn llm_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}
