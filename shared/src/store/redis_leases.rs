//! Connection leases in Redis ([`crate::store::ConnLease`]): `conns:{userId}` is a sorted set of
//! lease ids scored by expiry (ms since the epoch, Redis's own clock, so gateways' clocks do not
//! matter). Acquire and renew are Lua scripts, so each is atomic; the key itself expires with
//! its last lease, so nothing is left behind by a gateway that died.

use std::num::NonZeroU32;
use std::time::Duration;

use fred::prelude::{Client, Error as RedisError, LuaInterface, SortedSetsInterface};

use crate::store::{ConnLease, LeaseDecision, RENEW_BATCH, conns_key};

/// Shared by both scripts: the server's time in ms, and the key's expiry set to its last lease.
macro_rules! prelude {
    () => {
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function expire_with_last_lease(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', key, last[2]) end
end
"#
    };
}

/// KEYS[1]: `conns:{userId}`. ARGV: lease id, max, ttl ms. Drops expired leases; adds (or
/// renews) the lease when it is held or the count is under max and returns -1; otherwise
/// returns the ms until the oldest lease expires.
const ACQUIRE: &str = concat!(
    prelude!(),
    r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) - now
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
expire_with_last_lease(KEYS[1])
return -1
"#
);

/// KEYS: `conns:{userId}` per lease. ARGV[1]: ttl ms, ARGV[i + 1]: the lease id of KEYS[i].
/// Extends each unexpired lease; returns how many were expired or gone.
const RENEW: &str = concat!(
    prelude!(),
    r#"
local expiry = now + tonumber(ARGV[1])
local expired = 0
for i, key in ipairs(KEYS) do
  local score = redis.call('ZSCORE', key, ARGV[i + 1])
  if score and tonumber(score) > now then
    redis.call('ZADD', key, expiry, ARGV[i + 1])
    expire_with_last_lease(key)
  else
    if score then redis.call('ZREM', key, ARGV[i + 1]) end
    expired = expired + 1
  end
end
return expired
"#
);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) async fn acquire(
    client: &Client,
    lease: &ConnLease,
    max: NonZeroU32,
    ttl: Duration,
) -> Result<LeaseDecision, RedisError> {
    let args: Vec<String> = vec![
        lease.lease_id.clone(),
        max.to_string(),
        millis(ttl).to_string(),
    ];
    let wait: i64 = client
        .eval(ACQUIRE, vec![conns_key(&lease.user_id)], args)
        .await?;
    Ok(match u64::try_from(wait) {
        Ok(ms) => LeaseDecision::Full {
            retry_after: Duration::from_millis(ms),
        },
        Err(_) => LeaseDecision::Granted,
    })
}

pub(crate) async fn renew(
    client: &Client,
    leases: &[ConnLease],
    ttl: Duration,
) -> Result<usize, RedisError> {
    let mut expired = 0;
    for batch in leases.chunks(RENEW_BATCH) {
        let keys: Vec<String> = batch.iter().map(|l| conns_key(&l.user_id)).collect();
        let mut args = Vec::with_capacity(batch.len() + 1);
        args.push(millis(ttl).to_string());
        args.extend(batch.iter().map(|l| l.lease_id.clone()));
        let count: i64 = client.eval(RENEW, keys, args).await?;
        expired += usize::try_from(count).unwrap_or(0);
    }
    Ok(expired)
}

pub(crate) async fn release(client: &Client, lease: &ConnLease) -> Result<(), RedisError> {
    client
        .zrem::<i64, _, _>(conns_key(&lease.user_id), lease.lease_id.clone())
        .await
        .map(|_| ())
}
