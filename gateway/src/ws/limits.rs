//! The bounds of one connection's outbound side and resumes (flattened into the gateway's
//! settings): the queue in bytes, the socket write timeout, resumes in flight and their rate.

use std::time::Duration;

use clap::Args;

/// The `--help` heading of these settings.
const HEADING: &str = "Outbound and resume limits";

#[derive(Debug, Clone, Args)]
pub struct OutboundLimits {
    /// Bytes of frames queued per connection (besides OUTBOUND_QUEUE frames) before it counts
    /// as too slow: a live message that does not fit closes it with 4009, a replay page waits.
    #[arg(long, env = "OUTBOUND_QUEUE_BYTES", help_heading = HEADING, default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(4_096..=1_073_741_824))]
    pub outbound_queue_bytes: u64,
    /// Longest a socket write may wait for the peer to take bytes; beyond it the connection
    /// is closed with 4009, even when no live traffic arrives.
    #[arg(long, env = "WRITE_TIMEOUT_MS", help_heading = HEADING, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub write_timeout_ms: u64,
    /// Guild replays one connection runs at once; more resumed guilds wait their turn.
    #[arg(long, env = "MAX_RESUMES_IN_FLIGHT", help_heading = HEADING, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_024))]
    pub max_resumes_in_flight: u32,
    /// Guilds one connection may have waiting for a replay; a resume beyond it, or of a guild
    /// already being resumed, is answered `rate_limited`.
    #[arg(long, env = "MAX_RESUMES_QUEUED", help_heading = HEADING, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_resumes_queued: u32,
    /// `resume` frames one connection may send per minute (after a burst of 4); beyond it
    /// they are answered `rate_limited`. Resumes named in the handshake do not count.
    #[arg(long, env = "RESUME_FRAMES_PER_MIN", help_heading = HEADING, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub resume_frames_per_min: u32,
}

impl OutboundLimits {
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}
