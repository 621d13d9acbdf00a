//! Rate limits that hold across processes: the [`RateLimiter`] trait with an in-memory
//! implementation (embedded mode, or one worker alone) and a Redis one (shared by every worker).
//!
//! Both run the same algorithm, GCRA (the generic cell rate algorithm, as in `governor`): a key
//! may take a burst of `limit` hits, then one more every `period / limit`. Each key stores one
//! number, its "theoretical arrival time" (TAT); a hit is allowed while the TAT is at most
//! `period - period / limit` ahead of now, and moves the TAT on by `period / limit`. Redis runs
//! it as one Lua script (atomic; the server's clock, so workers' clocks do not matter), with
//! the key expiring once the TAT has passed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fred::prelude::*;
use parking_lot::Mutex;

/// How many hits a key may take per period: a burst of `limit`, refilled evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u32,
    period: Duration,
}

impl Quota {
    /// `limit` hits per `period`; a zero limit counts as one.
    pub fn new(limit: u32, period: Duration) -> Self {
        Quota {
            limit: limit.max(1),
            period,
        }
    }

    /// `limit` hits per minute.
    pub fn per_minute(limit: u32) -> Self {
        Quota::new(limit, Duration::from_secs(60))
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Time between two hits at the sustained rate.
    fn interval(&self) -> Duration {
        self.period / self.limit
    }

    /// How far the TAT may run ahead of now and still admit a hit.
    fn tolerance(&self) -> Duration {
        self.period.saturating_sub(self.interval())
    }
}

/// The answer to one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Counted; go ahead.
    Allowed,
    /// Over the quota (not counted); the next hit is allowed after `retry_after`.
    Limited { retry_after: Duration },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
}

/// Counts hits per key against a quota.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one hit on `key` if `quota` allows it.
    async fn hit(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError>;
}

/// The GCRA step: the decision and, when allowed, the new TAT (as an offset from now).
fn gcra(ahead: Duration, quota: Quota) -> (Decision, Option<Duration>) {
    let tolerance = quota.tolerance();
    if ahead > tolerance {
        let retry_after = ahead - tolerance;
        (Decision::Limited { retry_after }, None)
    } else {
        (Decision::Allowed, Some(ahead + quota.interval()))
    }
}

/// Rate limits in this process's memory.
#[derive(Default)]
pub struct MemoryRateLimiter {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    /// Key → TAT.
    tats: HashMap<String, Instant>,
    /// Keys kept after the last sweep; the next sweep runs when the map has doubled.
    swept_len: usize,
}

/// Smallest map size worth sweeping.
const SWEEP_MIN: usize = 1024;

impl MemoryRateLimiter {
    pub fn new() -> Self {
        MemoryRateLimiter::default()
    }
}

impl MemoryState {
    /// Drops keys whose TAT has passed (they behave exactly like absent keys).
    fn sweep_if_grown(&mut self, now: Instant) {
        if self.tats.len() < SWEEP_MIN.max(self.swept_len * 2) {
            return;
        }
        self.tats.retain(|_, tat| *tat > now);
        self.swept_len = self.tats.len();
    }
}

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let ahead = state
            .tats
            .get(key)
            .map(|tat| tat.saturating_duration_since(now))
            .unwrap_or_default();
        let (decision, new_tat) = gcra(ahead, quota);
        if let Some(offset) = new_tat {
            state.tats.insert(key.to_owned(), now + offset);
            state.sweep_if_grown(now);
        }
        Ok(decision)
    }
}

/// GCRA in Redis. KEYS[1]: the key. ARGV: interval and tolerance in microseconds.
/// Returns -1 when allowed, else the microseconds until a hit would be.
const GCRA_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then return ahead - tolerance end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return -1
"#;

/// How long one Redis command may take.
const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Rate limits in Redis, shared by every process that uses the same server.
#[derive(Clone)]
pub struct RedisRateLimiter {
    client: Client,
}

impl RedisRateLimiter {
    /// Over an already connected client.
    pub fn new(client: Client) -> Self {
        RedisRateLimiter { client }
    }

    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`); fails when Redis does not answer.
    /// The connection is re-established in the background after an outage.
    pub async fn connect(url: &str) -> Result<Self, RateLimitError> {
        let unavailable = |e: Error| RateLimitError::Unavailable(format!("{url}: {e}"));
        let config = Config::from_url(url).map_err(unavailable)?;
        let client = Builder::from_config(config)
            .with_performance_config(|perf| perf.default_command_timeout = REDIS_COMMAND_TIMEOUT)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(unavailable)?;
        client.init().await.map_err(unavailable)?;
        Ok(RedisRateLimiter { client })
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let wait: i64 = self
            .client
            .eval(
                GCRA_SCRIPT,
                vec![key.to_owned()],
                vec![micros(quota.interval()), micros(quota.tolerance())],
            )
            .await
            .map_err(|e| RateLimitError::Unavailable(e.to_string()))?;
        Ok(match u64::try_from(wait) {
            Ok(micros) => Decision::Limited {
                retry_after: Duration::from_micros(micros),
            },
            Err(_) => Decision::Allowed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_limiter_allows_a_burst_then_refuses() {
        let limiter = MemoryRateLimiter::new();
        let quota = Quota::per_minute(3);
        for _ in 0..3 {
            assert_eq!(limiter.hit("k", quota).await.unwrap(), Decision::Allowed);
        }
        let Decision::Limited { retry_after } = limiter.hit("k", quota).await.unwrap() else {
            panic!("the fourth hit within a minute must be refused");
        };
        assert!(retry_after <= Duration::from_secs(20), "{retry_after:?}");
        assert_eq!(
            limiter.hit("other", quota).await.unwrap(),
            Decision::Allowed
        );
    }

    #[tokio::test]
    async fn memory_limiter_refills_evenly() {
        let limiter = MemoryRateLimiter::new();
        let quota = Quota::new(2, Duration::from_millis(100));
        assert_eq!(limiter.hit("k", quota).await.unwrap(), Decision::Allowed);
        assert_eq!(limiter.hit("k", quota).await.unwrap(), Decision::Allowed);
        let Decision::Limited { retry_after } = limiter.hit("k", quota).await.unwrap() else {
            panic!("the burst is two");
        };
        tokio::time::sleep(retry_after).await;
        assert_eq!(limiter.hit("k", quota).await.unwrap(), Decision::Allowed);
    }

    #[test]
    fn sweeping_keeps_live_keys() {
        let now = Instant::now();
        let mut state = MemoryState::default();
        for i in 0..SWEEP_MIN {
            state.tats.insert(format!("old{i}"), now);
        }
        state
            .tats
            .insert("live".into(), now + Duration::from_secs(5));
        state.sweep_if_grown(now);
        assert_eq!(state.tats.len(), 1);
        assert!(state.tats.contains_key("live"));
    }
}
