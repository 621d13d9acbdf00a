//! The in-memory session store of embedded mode: sessions and connection leases
//! ([`crate::store::ConnLease`]) in this process's memory, with the same rules as Redis.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::store::{ConnLease, LeaseDecision};
use crate::store::{Session, SessionStore, StoreError};

#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: RwLock<HashMap<String, Session>>,
    /// User → (lease id, expiry) of each lease held: a user holds a few, so a vector sized to
    /// them (a map's smallest table is ~200 bytes for the one lease most users hold).
    leases: Mutex<HashMap<String, Vec<Held>>>,
}

/// One lease held: its id and when it expires.
type Held = (String, Instant);

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Takes `lease_id` in one user's leases unless `max` unexpired ones are held.
fn acquire(
    held: &mut Vec<Held>,
    lease_id: &str,
    max: NonZeroU32,
    ttl: Duration,
    now: Instant,
) -> LeaseDecision {
    held.retain(|(_, expiry)| *expiry > now);
    if let Some((_, expiry)) = held.iter_mut().find(|(id, _)| id == lease_id) {
        *expiry = now + ttl;
        return LeaseDecision::Granted;
    }
    let count = u32::try_from(held.len()).unwrap_or(u32::MAX);
    if count >= max.get() {
        let oldest = held.iter().map(|(_, expiry)| *expiry).min().unwrap_or(now);
        return LeaseDecision::Full {
            retry_after: oldest.saturating_duration_since(now),
        };
    }
    held.reserve_exact(1);
    held.push((lease_id.to_owned(), now + ttl));
    LeaseDecision::Granted
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, user_id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.sessions.read().get(user_id).cloned())
    }

    async fn put(&self, user_id: &str, session: &Session) -> Result<(), StoreError> {
        self.sessions
            .write()
            .insert(user_id.to_owned(), session.clone());
        Ok(())
    }

    async fn delete(&self, user_id: &str) -> Result<(), StoreError> {
        self.sessions.write().remove(user_id);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn acquire_lease(
        &self,
        lease: &ConnLease,
        max: NonZeroU32,
        ttl: Duration,
    ) -> Result<LeaseDecision, StoreError> {
        let mut leases = self.leases.lock();
        let held = leases.entry(lease.user_id.clone()).or_default();
        Ok(acquire(held, &lease.lease_id, max, ttl, Instant::now()))
    }

    async fn renew_leases(&self, leases: &[ConnLease], ttl: Duration) -> Result<usize, StoreError> {
        let now = Instant::now();
        let mut all = self.leases.lock();
        let mut expired = 0;
        for lease in leases {
            let expiry = all
                .get_mut(&lease.user_id)
                .and_then(|held| held.iter_mut().find(|(id, _)| *id == lease.lease_id))
                .map(|(_, expiry)| expiry)
                .filter(|expiry| **expiry > now);
            match expiry {
                Some(expiry) => *expiry = now + ttl,
                None => expired += 1,
            }
        }
        Ok(expired)
    }

    async fn release_lease(&self, lease: &ConnLease) -> Result<(), StoreError> {
        let mut all = self.leases.lock();
        if let Some(held) = all.get_mut(&lease.user_id) {
            held.retain(|(id, _)| *id != lease.lease_id);
            if held.is_empty() {
                all.remove(&lease.user_id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn two() -> NonZeroU32 {
        NonZeroU32::new(2).unwrap()
    }

    #[tokio::test]
    async fn leases_are_capped_per_user_and_come_back_on_release() {
        let store = MemoryStore::new();
        let (a, b, c) = (
            ConnLease::new("u1"),
            ConnLease::new("u1"),
            ConnLease::new("u1"),
        );
        assert_eq!(
            store.acquire_lease(&a, two(), TTL).await.unwrap(),
            LeaseDecision::Granted
        );
        assert_eq!(
            store.acquire_lease(&b, two(), TTL).await.unwrap(),
            LeaseDecision::Granted
        );
        let LeaseDecision::Full { retry_after } =
            store.acquire_lease(&c, two(), TTL).await.unwrap()
        else {
            panic!("a third lease is over the cap");
        };
        assert!(
            retry_after <= TTL && retry_after > TTL / 2,
            "{retry_after:?}"
        );
        let other = ConnLease::new("u2");
        assert_eq!(
            store.acquire_lease(&other, two(), TTL).await.unwrap(),
            LeaseDecision::Granted
        );
        assert_eq!(
            store.acquire_lease(&a, two(), TTL).await.unwrap(),
            LeaseDecision::Granted,
            "held"
        );

        store.release_lease(&a).await.unwrap();
        assert_eq!(
            store.acquire_lease(&c, two(), TTL).await.unwrap(),
            LeaseDecision::Granted
        );
    }

    #[test]
    fn expired_leases_free_their_slots_and_are_not_renewed() {
        let now = Instant::now();
        let mut held = Vec::new();
        let ttl = Duration::from_millis(100);
        assert_eq!(
            acquire(&mut held, "a", two(), ttl, now),
            LeaseDecision::Granted
        );
        assert_eq!(
            acquire(&mut held, "b", two(), ttl, now),
            LeaseDecision::Granted
        );
        assert_eq!(
            acquire(&mut held, "c", two(), ttl, now + ttl / 2),
            LeaseDecision::Full {
                retry_after: ttl / 2
            }
        );
        assert_eq!(
            acquire(&mut held, "c", two(), ttl, now + ttl),
            LeaseDecision::Granted
        );
        assert_eq!(held.len(), 1, "the expired leases were dropped");
    }

    #[tokio::test]
    async fn renewal_extends_held_leases_and_counts_expired_ones() {
        let store = MemoryStore::new();
        let ttl = Duration::from_millis(500);
        let (a, gone) = (ConnLease::new("u1"), ConnLease::new("u1"));
        store.acquire_lease(&a, two(), ttl).await.unwrap();
        assert_eq!(
            store
                .renew_leases(&[a.clone(), gone.clone()], TTL)
                .await
                .unwrap(),
            1
        );
        tokio::time::sleep(ttl * 2).await;
        let (b, c) = (ConnLease::new("u1"), ConnLease::new("u1"));
        assert_eq!(
            store.acquire_lease(&b, two(), TTL).await.unwrap(),
            LeaseDecision::Granted
        );
        assert!(
            matches!(
                store.acquire_lease(&c, two(), TTL).await.unwrap(),
                LeaseDecision::Full { .. }
            ),
            "the renewed lease outlived its first expiry"
        );
    }
}
