//! The session store: a user's guild memberships, kept outside the token. Redis key
//! `session:{userId}` holds JSON `{"guilds":[{"id":"…","name":"…"}], …}`; no document means no
//! guilds. The in-memory store serves embedded mode; Redis serves distributed mode.

mod instrumented;
mod leases;
mod memory;
pub mod rate_limit;
mod redis;
mod redis_leases;
pub mod session_watch;

pub use instrumented::InstrumentedStore;
pub use leases::{ConnLease, LeaseDecision, RENEW_BATCH, conns_key};
pub use memory::MemoryStore;
pub use redis::RedisStore;

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A guild the user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildRef {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The session document. Fields other than `guilds` are kept as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(default)]
    pub guilds: Vec<GuildRef>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Session {
    /// Whether the document marks the session revoked (`"revoked": true`).
    pub fn is_revoked(&self) -> bool {
        self.extra.get("revoked").and_then(|v| v.as_bool()) == Some(true)
    }

    pub fn with_guilds<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Session {
            guilds: ids
                .into_iter()
                .map(|id| GuildRef {
                    id: id.into(),
                    name: None,
                })
                .collect(),
            extra: Default::default(),
        }
    }

    /// The guild ids, in document order, without duplicates.
    pub fn guild_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::with_capacity(self.guilds.len());
        for g in &self.guilds {
            if !ids.contains(&g.id) {
                ids.push(g.id.clone());
            }
        }
        ids
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::Text(s) => s,
        Id::Number(n) => n.to_string(),
    })
}

/// The Redis key of a user's session.
pub fn session_key(user_id: &str) -> String {
    format!("session:{user_id}")
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Where sessions live.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The user's session; `None` when absent or unreadable (logged by the implementation).
    async fn get(&self, user_id: &str) -> Result<Option<Session>, StoreError>;
    /// Creates or replaces the user's session.
    async fn put(&self, user_id: &str, session: &Session) -> Result<(), StoreError>;
    /// Removes the user's session.
    async fn delete(&self, user_id: &str) -> Result<(), StoreError>;
    /// The sessions of many users at once, in the order asked (Redis: `MGET`). Used by the
    /// gateway's revocation recheck; the default asks one by one.
    async fn get_many(&self, user_ids: &[String]) -> Result<Vec<Option<Session>>, StoreError> {
        let mut sessions = Vec::with_capacity(user_ids.len());
        for user_id in user_ids {
            sessions.push(self.get(user_id).await?);
        }
        Ok(sessions)
    }
    /// Whether the store answers now.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Takes a connection slot of `lease.user_id` for `ttl` unless the user already holds `max`
    /// unexpired leases (see [`crate::store::ConnLease`]). Taking a lease already held renews it.
    async fn acquire_lease(
        &self,
        lease: &ConnLease,
        max: NonZeroU32,
        ttl: Duration,
    ) -> Result<LeaseDecision, StoreError>;
    /// Extends held leases to `ttl` from now, in as few round trips as possible; a lease that
    /// already expired (or was released) is not taken again. Returns how many had expired.
    async fn renew_leases(&self, leases: &[ConnLease], ttl: Duration) -> Result<usize, StoreError>;
    /// Gives a lease back.
    async fn release_lease(&self, lease: &ConnLease) -> Result<(), StoreError>;
}
