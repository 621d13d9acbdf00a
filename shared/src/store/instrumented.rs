//! [`InstrumentedStore`]: a [`SessionStore`] that times every call of the store it wraps
//! (`chat_store_call_duration_seconds{op}`, `chat_store_call_errors_total{op}`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{ConnLease, LeaseDecision};
use crate::store::{Session, SessionStore, StoreError};
use crate::telemetry::calls::CallMetrics;

/// The store operations, in the order of [`OPS`].
#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    Put,
    Delete,
    Ping,
    AcquireLease,
    RenewLeases,
    ReleaseLease,
}

/// The `op` label of each [`Op`].
const OPS: [&str; 7] = [
    "get",
    "put",
    "delete",
    "ping",
    "acquire_lease",
    "renew_leases",
    "release_lease",
];

/// 50 µs to about 1.6 s: loopback round trips up to the store's 1 s command timeout.
fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// A session store whose calls are timed.
pub struct InstrumentedStore {
    inner: Arc<dyn SessionStore>,
    calls: CallMetrics,
}

impl InstrumentedStore {
    /// Wraps `inner`, registering the `chat_store_*` metrics in `registry`.
    pub fn wrap(inner: Arc<dyn SessionStore>, registry: &mut Registry) -> Arc<dyn SessionStore> {
        let calls = CallMetrics::register(registry, "chat_store", "Session store", &OPS, histogram);
        Arc::new(InstrumentedStore { inner, calls })
    }
}

#[async_trait::async_trait]
impl SessionStore for InstrumentedStore {
    async fn get(&self, user_id: &str) -> Result<Option<Session>, StoreError> {
        self.calls
            .time(Op::Get as usize, self.inner.get(user_id))
            .await
    }

    async fn put(&self, user_id: &str, session: &Session) -> Result<(), StoreError> {
        let call = self.inner.put(user_id, session);
        self.calls.time(Op::Put as usize, call).await
    }

    async fn delete(&self, user_id: &str) -> Result<(), StoreError> {
        self.calls
            .time(Op::Delete as usize, self.inner.delete(user_id))
            .await
    }

    async fn get_many(&self, user_ids: &[String]) -> Result<Vec<Option<Session>>, StoreError> {
        // Timed as one `get`: the recheck's single round trip.
        self.calls
            .time(Op::Get as usize, self.inner.get_many(user_ids))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.calls.time(Op::Ping as usize, self.inner.ping()).await
    }

    async fn acquire_lease(
        &self,
        lease: &ConnLease,
        max: NonZeroU32,
        ttl: Duration,
    ) -> Result<LeaseDecision, StoreError> {
        let call = self.inner.acquire_lease(lease, max, ttl);
        self.calls.time(Op::AcquireLease as usize, call).await
    }

    async fn renew_leases(&self, leases: &[ConnLease], ttl: Duration) -> Result<usize, StoreError> {
        let call = self.inner.renew_leases(leases, ttl);
        self.calls.time(Op::RenewLeases as usize, call).await
    }

    async fn release_lease(&self, lease: &ConnLease) -> Result<(), StoreError> {
        let call = self.inner.release_lease(lease);
        self.calls.time(Op::ReleaseLease as usize, call).await
    }
}
