//! Settings of the NATS bus (distributed mode): log retention, replicas, ingress and bot-queue
//! timing. Each is a flag and an environment variable, shown in `--help`.

use std::time::Duration;

use clap::Args;

const DEFAULT_RETAIN_PER_GUILD: i64 = 10_000;
const DEFAULT_MAX_AGE_SECS: u64 = 7 * 24 * 60 * 60;
const DEFAULT_REPLICAS: usize = 1;
const DEFAULT_INGRESS_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_BOT_ACK_WAIT_SECS: u64 = 30;
const DEFAULT_BOT_MAX_DELIVER: i64 = 3;

/// How the NATS bus sets up its streams, consumers and key-value bucket.
#[derive(Debug, Clone, Args)]
pub struct NatsConfig {
    /// Log records kept per guild (at least that many entries: under load one record holds
    /// several; older ones are dropped, `resume` then reports a gap).
    #[arg(long, env = "LOG_RETAIN_PER_GUILD", default_value_t = DEFAULT_RETAIN_PER_GUILD,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub log_retain_per_guild: i64,
    /// Longest time a log entry (and its messageId claim) is kept, in seconds.
    #[arg(long, env = "LOG_MAX_AGE_SECS", default_value_t = DEFAULT_MAX_AGE_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub log_max_age_secs: u64,
    /// JetStream replicas of every stream and bucket (1 to 5; 3 in a cluster).
    #[arg(long, env = "NATS_REPLICAS", default_value_t = DEFAULT_REPLICAS,
          value_parser = parse_replicas)]
    pub nats_replicas: usize,
    /// How long a submitted send waits for a router's answer, in milliseconds.
    #[arg(long, env = "INGRESS_TIMEOUT_MS", default_value_t = DEFAULT_INGRESS_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ingress_timeout_ms: u64,
    /// How long a bot job may stay unacknowledged before another worker gets it, in seconds.
    #[arg(long, env = "BOT_ACK_WAIT_SECS", default_value_t = DEFAULT_BOT_ACK_WAIT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub bot_ack_wait_secs: u64,
    /// Deliveries of a bot job before it is given up.
    #[arg(long, env = "BOT_MAX_DELIVER", default_value_t = DEFAULT_BOT_MAX_DELIVER,
          value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub bot_max_deliver: i64,
    /// How this process authenticates to NATS (and its TLS settings).
    #[command(flatten)]
    pub auth: super::auth::NatsAuth,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            log_retain_per_guild: DEFAULT_RETAIN_PER_GUILD,
            log_max_age_secs: DEFAULT_MAX_AGE_SECS,
            nats_replicas: DEFAULT_REPLICAS,
            ingress_timeout_ms: DEFAULT_INGRESS_TIMEOUT_MS,
            bot_ack_wait_secs: DEFAULT_BOT_ACK_WAIT_SECS,
            bot_max_deliver: DEFAULT_BOT_MAX_DELIVER,
            auth: Default::default(),
        }
    }
}

impl NatsConfig {
    pub fn log_max_age(&self) -> Duration {
        Duration::from_secs(self.log_max_age_secs)
    }

    pub fn ingress_timeout(&self) -> Duration {
        Duration::from_millis(self.ingress_timeout_ms)
    }

    pub fn bot_ack_wait(&self) -> Duration {
        Duration::from_secs(self.bot_ack_wait_secs)
    }

    /// Deliveries allowed per bot job, as the `max_attempts` of a delivery.
    pub fn bot_max_attempts(&self) -> u32 {
        u32::try_from(self.bot_max_deliver).unwrap_or(u32::MAX)
    }
}

fn parse_replicas(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n @ 1..=5) => Ok(n),
        _ => Err(format!("NATS_REPLICAS must be 1 to 5, not {value:?}")),
    }
}
