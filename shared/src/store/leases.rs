//! Connection leases: how many WebSockets one user holds across every gateway.
//!
//! Each open connection holds a lease in the session store: a member of the user's set
//! `conns:{userId}` (a Redis sorted set, scored by the lease's expiry in milliseconds since the
//! epoch). Taking one drops the expired leases, counts the rest, and adds the new lease only when
//! the count is under the cap — atomically (one Lua script in Redis, one lock in memory). The
//! gateway renews the leases of its live connections in one batched call per interval and
//! releases a lease when its connection ends; a gateway that dies without releasing loses its
//! leases when they expire, so its users' slots come back after at most one lease lifetime.

use std::time::Duration;

/// One connection's claim on a slot of its user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnLease {
    pub user_id: String,
    /// Unique across gateways and restarts (a ULID).
    pub lease_id: String,
}

impl ConnLease {
    /// A fresh lease for a new connection of `user_id`.
    pub fn new(user_id: &str) -> Self {
        ConnLease {
            user_id: user_id.to_owned(),
            lease_id: ulid::Ulid::new().to_string(),
        }
    }
}

/// The answer to a lease request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    /// The lease is held until it expires, is renewed, or is released.
    Granted,
    /// The user already holds the maximum; the soonest a slot frees without a close is when the
    /// oldest lease would expire, `retry_after` from now.
    Full { retry_after: Duration },
}

/// The Redis key of a user's connection leases.
pub fn conns_key(user_id: &str) -> String {
    format!("conns:{user_id}")
}

/// Leases renewed per store call, so one call never blocks Redis for long.
pub const RENEW_BATCH: usize = 500;
