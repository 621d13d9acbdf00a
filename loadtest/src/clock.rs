//! One monotonic clock for the whole process. Send times travel inside message texts as
//! nanoseconds since [`epoch`], so every receiver in this process can compute send→receive
//! latency without trusting wall clocks.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant all in-process timestamps count from.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`] for `at` (0 when `at` precedes it).
pub fn ns_at(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since [`epoch`] now.
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// The instant `ns` nanoseconds after [`epoch`].
pub fn instant_at(ns: u64) -> Instant {
    epoch() + Duration::from_nanos(ns)
}
