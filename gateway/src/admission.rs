//! Admission of new WebSockets: the per-client-address handshake rate (429 `rate_limited`),
//! the node's connection cap and handshake rate (cheap, 503 `unavailable`), and the per-user cap across gateways (a lease in the session
//! store, 429 `too_many_connections`). What admission grants is a guard: the slot is given back
//! when the guard is dropped — when the connection ends, or when the upgrade never completes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_shared::protocol::ErrorCode;
use chat_shared::store::rate_limit::{self, Decision, MemoryRateLimiter, RateLimiter as _};
use chat_shared::store::{ConnLease, LeaseDecision, SessionStore};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::ConnectionLimits;

/// What a client refused by a full node is told to wait: slots free as connections end, which
/// is slow, so an early retry would mostly be refused again.
const NODE_FULL_RETRY: Duration = Duration::from_secs(5);

/// A handshake refused by admission: status, contract code, metric reason, and Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: ErrorCode,
    /// The `reason` label of `handshake_refusals`.
    pub reason: &'static str,
    pub retry_after: Duration,
}

impl Refusal {
    fn node_full() -> Self {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::Unavailable,
            reason: "node_full",
            retry_after: NODE_FULL_RETRY,
        }
    }

    fn handshake_rate(retry_after: Duration) -> Self {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::Unavailable,
            reason: "handshake_rate",
            retry_after,
        }
    }

    fn ip_rate(retry_after: Duration) -> Self {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: ErrorCode::RateLimited,
            reason: "ip_rate",
            retry_after,
        }
    }

    fn too_many_connections(retry_after: Duration) -> Self {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: ErrorCode::TooManyConnections,
            reason: ErrorCode::TooManyConnections.as_str(),
            retry_after,
        }
    }

    fn handshakes_in_flight() -> Self {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::Unavailable,
            reason: "handshakes_in_flight",
            retry_after: Duration::from_secs(1),
        }
    }

    fn store_unavailable() -> Self {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::Unavailable,
            reason: ErrorCode::Unavailable.as_str(),
            retry_after: Duration::from_secs(1),
        }
    }

    /// Retry-After in whole seconds, rounded up, at least 1.
    fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.code }))).into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        response
    }
}

/// Holds one of the node's connection slots (if the node has a cap) until dropped.
#[derive(Debug)]
pub struct NodeSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Holds one of the handshakes the node works on at once (if it has a cap) until dropped, when
/// the handshake has been answered.
#[derive(Debug)]
pub struct HandshakeSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Holds one of the user's connection slots (if users have a cap) until dropped: the lease is
/// renewed while held and released on drop.
pub struct UserSlot {
    admission: Arc<Admission>,
    lease: ConnLease,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        self.admission.live.lock().remove(&self.lease.lease_id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, lease) = (self.admission.store.clone(), self.lease.clone());
        runtime.spawn(async move {
            if let Err(error) = store.release_lease(&lease).await {
                tracing::warn!(%error, user = %lease.user_id, "connection lease not released; it expires on its own");
            }
        });
    }
}

/// The gateway's admission state.
pub struct Admission {
    node_slots: Option<Arc<Semaphore>>,
    max_node: usize,
    handshakes: Option<DefaultDirectRateLimiter>,
    /// Handshakes per client address: GCRA in memory (keys are swept as they expire).
    per_ip: Option<rate_limit::Quota>,
    ip_limiter: MemoryRateLimiter,
    in_flight: Option<Arc<Semaphore>>,
    per_user: Option<NonZeroU32>,
    lease_ttl: Duration,
    store: Arc<dyn SessionStore>,
    /// The leases of this gateway's connections, by lease id, renewed together.
    live: Mutex<HashMap<String, ConnLease>>,
}

impl Admission {
    pub fn new(limits: &ConnectionLimits, store: Arc<dyn SessionStore>) -> Arc<Self> {
        let max_node = limits.max_connections as usize;
        let handshakes = NonZeroU32::new(limits.max_handshakes_per_sec).map(|rate| {
            let burst = NonZeroU32::new(limits.handshake_burst).unwrap_or(rate);
            crate::rate::limiter(Quota::per_second(rate).allow_burst(burst))
        });
        let per_ip = (limits.max_handshakes_per_ip_per_sec > 0).then(|| {
            let burst = limits.handshake_burst_per_ip.max(1);
            let secs = f64::from(burst) / f64::from(limits.max_handshakes_per_ip_per_sec);
            rate_limit::Quota::new(burst, Duration::from_secs_f64(secs))
        });
        Arc::new(Admission {
            per_ip,
            ip_limiter: MemoryRateLimiter::new(),
            node_slots: (max_node > 0).then(|| Arc::new(Semaphore::new(max_node))),
            max_node,
            handshakes,
            in_flight: (limits.max_handshakes_in_flight > 0)
                .then(|| Arc::new(Semaphore::new(limits.max_handshakes_in_flight as usize))),
            per_user: NonZeroU32::new(limits.max_connections_per_user),
            lease_ttl: limits.connection_lease(),
            store,
            live: Mutex::new(HashMap::new()),
        })
    }

    /// The client address's handshake rate. No I/O.
    pub async fn admit_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let Some(quota) = self.per_ip else {
            return Ok(());
        };
        match self.ip_limiter.hit(&ip.to_string(), quota).await {
            Ok(Decision::Limited { retry_after }) => Err(Refusal::ip_rate(retry_after)),
            Ok(Decision::Allowed) | Err(_) => Ok(()),
        }
    }

    /// The node's limits: a free connection slot, then the handshake rate. No I/O.
    pub fn admit_to_node(&self) -> Result<NodeSlot, Refusal> {
        let permit = match &self.node_slots {
            Some(slots) => Some(
                slots
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| Refusal::node_full())?,
            ),
            None => None,
        };
        if let Some(limiter) = &self.handshakes
            && let Err(not_until) = limiter.check()
        {
            let wait = not_until.wait_time_from(crate::rate::clock().now());
            return Err(Refusal::handshake_rate(wait));
        }
        Ok(NodeSlot { _permit: permit })
    }

    /// A place among the handshakes being worked on, refused at once when they are all taken.
    pub fn begin_handshake(&self) -> Result<HandshakeSlot, Refusal> {
        let permit = match &self.in_flight {
            Some(slots) => Some(
                slots
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| Refusal::handshakes_in_flight())?,
            ),
            None => None,
        };
        Ok(HandshakeSlot { _permit: permit })
    }

    /// The user's cap across gateways: a lease in the session store. `None` when users have
    /// no cap.
    pub async fn admit_user(self: &Arc<Self>, user_id: &str) -> Result<Option<UserSlot>, Refusal> {
        let Some(max) = self.per_user else {
            return Ok(None);
        };
        let lease = ConnLease::new(user_id);
        match self.store.acquire_lease(&lease, max, self.lease_ttl).await {
            Ok(LeaseDecision::Granted) => {
                self.live
                    .lock()
                    .insert(lease.lease_id.clone(), lease.clone());
                Ok(Some(UserSlot {
                    admission: self.clone(),
                    lease,
                }))
            }
            Ok(LeaseDecision::Full { retry_after }) => {
                Err(Refusal::too_many_connections(retry_after))
            }
            Err(error) => {
                tracing::warn!(%error, "session store unavailable for a connection lease");
                Err(Refusal::store_unavailable())
            }
        }
    }

    /// Connections holding a node slot now (handshakes being admitted included).
    pub fn node_connections(&self) -> usize {
        self.node_slots
            .as_ref()
            .map_or(0, |slots| self.max_node - slots.available_permits())
    }

    /// Leases this gateway renews.
    pub fn live_leases(&self) -> usize {
        self.live.lock().len()
    }

    /// Renews the leases of this gateway's connections every third of their lifetime, in one
    /// batched store call, until `stop`.
    pub async fn run_lease_renewal(self: Arc<Self>, stop: CancellationToken) {
        if self.per_user.is_none() {
            return;
        }
        let every = self.lease_ttl / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let leases: Vec<ConnLease> = self.live.lock().values().cloned().collect();
            if leases.is_empty() {
                continue;
            }
            match self.store.renew_leases(&leases, self.lease_ttl).await {
                Ok(0) => {}
                Ok(expired) => tracing::warn!(
                    expired,
                    "connection leases expired before renewal; those connections no longer count"
                ),
                Err(error) => tracing::warn!(%error, "connection leases not renewed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_shared::store::MemoryStore;
    use clap::Parser;

    use super::*;
    use crate::GatewayConfig;

    fn admission(args: &[&str]) -> Arc<Admission> {
        let config = GatewayConfig::parse_from([&["gateway"], args].concat());
        Admission::new(&config.connection_limits, Arc::new(MemoryStore::new()))
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        let secs = |ms| Refusal::handshake_rate(Duration::from_millis(ms)).retry_after_secs();
        assert_eq!(secs(0), 1);
        assert_eq!(secs(1), 1);
        assert_eq!(secs(1000), 1);
        assert_eq!(secs(1001), 2);
    }

    #[test]
    fn node_slots_come_back_when_dropped() {
        let admission = admission(&["--max-connections", "1", "--max-handshakes-per-sec", "0"]);
        let slot = admission.admit_to_node().expect("a free slot");
        let refusal = admission.admit_to_node().expect_err("full");
        assert_eq!(
            (refusal.status, refusal.reason),
            (StatusCode::SERVICE_UNAVAILABLE, "node_full")
        );
        assert_eq!(admission.node_connections(), 1);
        drop(slot);
        assert_eq!(admission.node_connections(), 0);
        admission.admit_to_node().expect("the slot is back");
    }

    #[test]
    fn handshakes_in_flight_are_capped_and_come_back() {
        let capped = admission(&["--max-handshakes-in-flight", "1"]);
        let first = capped.begin_handshake().expect("a free place");
        let refusal = capped.begin_handshake().expect_err("all taken");
        assert_eq!(
            (refusal.status, refusal.reason, refusal.retry_after_secs()),
            (StatusCode::SERVICE_UNAVAILABLE, "handshakes_in_flight", 1)
        );
        drop(first);
        capped.begin_handshake().expect("the place is back");
        let unlimited = admission(&["--max-handshakes-in-flight", "0"]);
        let held: Vec<_> = (0..1000).map(|_| unlimited.begin_handshake()).collect();
        assert!(held.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_user_slot_leaves_the_renewal_set_when_dropped() {
        let admission = admission(&["--max-connections-per-user", "1"]);
        let slot = admission.admit_user("u1").await.expect("admitted");
        assert_eq!(admission.live_leases(), 1);
        let refusal = admission
            .admit_user("u1")
            .await
            .err()
            .expect("over the cap");
        assert_eq!(refusal.code, ErrorCode::TooManyConnections);
        drop(slot);
        assert_eq!(admission.live_leases(), 0);
    }

    #[tokio::test]
    async fn the_per_ip_rate_counts_each_address_on_its_own() {
        let admission = admission(&[
            "--max-handshakes-per-ip-per-sec",
            "1",
            "--handshake-burst-per-ip",
            "2",
        ]);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        admission.admit_ip(a).await.expect("first");
        admission.admit_ip(a).await.expect("second");
        let refusal = admission.admit_ip(a).await.expect_err("over the burst");
        assert_eq!(
            (refusal.status, refusal.code, refusal.reason),
            (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "ip_rate"
            )
        );
        admission.admit_ip(b).await.expect("another address");
        let off = admission_off_ip();
        for _ in 0..1000 {
            off.admit_ip(a).await.expect("unlimited");
        }
    }

    fn admission_off_ip() -> Arc<Admission> {
        admission(&["--max-handshakes-per-ip-per-sec", "0"])
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        let admission = admission(&[
            "--max-connections",
            "0",
            "--max-handshakes-per-sec",
            "0",
            "--max-connections-per-user",
            "0",
        ]);
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(admission.admit_to_node().expect("unlimited"));
            assert!(
                admission
                    .admit_user("u1")
                    .await
                    .expect("unlimited")
                    .is_none()
            );
        }
    }
}
