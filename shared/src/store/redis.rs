//! The Redis session store of distributed mode: `session:{userId}` holds the session JSON;
//! `conns:{userId}` the user's connection leases ([`crate::store::ConnLease`]).
//! Every command gives up after a short timeout, so a stopped Redis answers `Unavailable`
//! quickly; the client reconnects on its own when Redis is back.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{
    Builder, Client, ClientLike, Config, Error as RedisError, KeysInterface, ReconnectPolicy,
};

use super::redis_leases;
use crate::store::{ConnLease, LeaseDecision};
use crate::store::{Session, SessionStore, StoreError, session_key};

/// How long one command (or the first connection) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Keys per `MGET` of [`RedisStore::get_many`].
const MGET_CHUNK: usize = 1000;
/// Pause between reconnect attempts while Redis is away (retried forever).
const RECONNECT_DELAY_MS: u32 = 200;

/// Sessions in Redis.
pub struct RedisStore {
    client: Client,
}

impl RedisStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`); fails when Redis does not answer.
    pub async fn connect(url: &str) -> Result<Arc<RedisStore>, StoreError> {
        let config = Config::from_url(url).map_err(|e| unavailable("parsing REDIS_URL", &e))?;
        let client = Builder::from_config(config)
            .with_connection_config(|connection| {
                connection.connection_timeout = COMMAND_TIMEOUT;
                connection.internal_command_timeout = COMMAND_TIMEOUT;
            })
            .with_performance_config(|performance| {
                performance.default_command_timeout = COMMAND_TIMEOUT;
            })
            .set_policy(ReconnectPolicy::new_constant(0, RECONNECT_DELAY_MS))
            .build()
            .map_err(|e| unavailable("configuring the Redis client", &e))?;
        client
            .init()
            .await
            .map_err(|e| unavailable("connecting to Redis", &e))?;
        Ok(Arc::new(RedisStore { client }))
    }
}

fn unavailable(doing: &str, error: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("{doing}: {error}"))
}

/// A stored document as a session; one that does not parse counts as no session.
fn parse_session(user_id: &str, document: &str) -> Option<Session> {
    match serde_json::from_str(document) {
        Ok(session) => Some(session),
        Err(error) => {
            tracing::warn!(user_id, %error, "unreadable session document; treating it as absent");
            None
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    #[tracing::instrument(name = "session.get", skip(self))]
    async fn get(&self, user_id: &str) -> Result<Option<Session>, StoreError> {
        let document: Option<String> = self
            .client
            .get(session_key(user_id))
            .await
            .map_err(|e| unavailable("reading a session", &e))?;
        Ok(document.and_then(|d| parse_session(user_id, &d)))
    }

    #[tracing::instrument(name = "session.get_many", skip_all, fields(users = user_ids.len()))]
    async fn get_many(&self, user_ids: &[String]) -> Result<Vec<Option<Session>>, StoreError> {
        let mut sessions = Vec::with_capacity(user_ids.len());
        for chunk in user_ids.chunks(MGET_CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|id| session_key(id)).collect();
            let documents: Vec<Option<String>> = self
                .client
                .mget(keys)
                .await
                .map_err(|e| unavailable("reading sessions", &e))?;
            sessions.extend(
                chunk
                    .iter()
                    .zip(documents)
                    .map(|(id, d)| d.and_then(|d| parse_session(id, &d))),
            );
        }
        Ok(sessions)
    }

    #[tracing::instrument(name = "session.put", skip(self, session))]
    async fn put(&self, user_id: &str, session: &Session) -> Result<(), StoreError> {
        let document = serde_json::to_string(session)
            .map_err(|e| StoreError::Unavailable(format!("encoding a session: {e}")))?;
        self.client
            .set::<(), _, _>(session_key(user_id), document, None, None, false)
            .await
            .map_err(|e| unavailable("writing a session", &e))
    }

    #[tracing::instrument(name = "session.delete", skip(self))]
    async fn delete(&self, user_id: &str) -> Result<(), StoreError> {
        self.client
            .del::<i64, _>(session_key(user_id))
            .await
            .map(|_| ())
            .map_err(|e| unavailable("deleting a session", &e))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| unavailable("pinging Redis", &e))
    }

    #[tracing::instrument(name = "lease.acquire", skip(self))]
    async fn acquire_lease(
        &self,
        lease: &ConnLease,
        max: NonZeroU32,
        ttl: Duration,
    ) -> Result<LeaseDecision, StoreError> {
        redis_leases::acquire(&self.client, lease, max, ttl)
            .await
            .map_err(|e| unavailable("taking a connection lease", &e))
    }

    #[tracing::instrument(name = "lease.renew", skip_all, fields(leases = leases.len()))]
    async fn renew_leases(&self, leases: &[ConnLease], ttl: Duration) -> Result<usize, StoreError> {
        redis_leases::renew(&self.client, leases, ttl)
            .await
            .map_err(|e| unavailable("renewing connection leases", &e))
    }

    #[tracing::instrument(name = "lease.release", skip(self))]
    async fn release_lease(&self, lease: &ConnLease) -> Result<(), StoreError> {
        redis_leases::release(&self.client, lease)
            .await
            .map_err(|e| unavailable("releasing a connection lease", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_session;

    #[test]
    fn documents_that_do_not_parse_are_no_session() {
        assert!(parse_session("u1", "{not json").is_none());
        assert!(parse_session("u1", r#"{"guilds":"g1"}"#).is_none());
        let session = parse_session("u1", r#"{"guilds":[{"id":7}],"x":1}"#).unwrap();
        assert_eq!(session.guild_ids(), ["7"]);
    }
}
