//! In-process rate limiters (governor) that share one clock. governor's `RateLimiter::direct`
//! makes a fresh clock per limiter, and making a quanta clock detects the CPU's counter with
//! `cpuid`, which traps to the hypervisor on a virtual machine: one limiter per connection
//! cost ~7% of the gateway's CPU in a reconnect storm (perf, issue #13 storm, session 9).
//! A clone of one clock made at first use costs nothing.

use std::sync::LazyLock;

use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

static CLOCK: LazyLock<DefaultClock> = LazyLock::new(DefaultClock::default);

/// The process's clock for rate limiting.
pub fn clock() -> DefaultClock {
    CLOCK.clone()
}

/// A limiter allowing `quota`, on the shared clock.
pub fn limiter(quota: Quota) -> DefaultDirectRateLimiter {
    RateLimiter::direct_with_clock(quota, clock())
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn limiters_on_the_shared_clock_limit_as_their_own_would() {
        let burst = NonZeroU32::new(3).expect("non-zero");
        let shared = limiter(Quota::per_minute(burst));
        let own = RateLimiter::direct(Quota::per_minute(burst));
        let allowed = |l: &DefaultDirectRateLimiter| (0..5).filter(|_| l.check().is_ok()).count();
        assert_eq!((allowed(&shared), allowed(&own)), (3, 3));
    }
}
