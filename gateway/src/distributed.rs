//! Distributed mode: the gateway on the NATS bus and the Redis session store, with no workers
//! in-process (routers and bot workers are their own processes).

use std::sync::Arc;

use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::store::RedisStore;

use crate::{Deps, GatewayConfig};

#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Nats {
        url: String,
        source: chat_shared::bus::BusError,
    },
    #[error("cannot connect to Redis at {url}: {source}")]
    Redis {
        url: String,
        source: chat_shared::store::StoreError,
    },
    #[error("cannot connect the rate limiter to Redis: {0}")]
    RateLimiter(#[from] chat_shared::store::rate_limit::RateLimitError),
    #[error(transparent)]
    Config(#[from] chat_shared::config::ConfigError),
}

/// Connects to NATS and Redis and builds the gateway's dependencies.
pub async fn deps(
    config: &GatewayConfig,
    nats: &NatsConfig,
    nats_url: &str,
    redis_url: &str,
) -> Result<Deps, DistributedError> {
    let verifier = config.auth.verifier(None)?;
    let bus = NatsBus::connect_as(nats_url, nats, chat_shared::bus::nats::StreamRole::Verify)
        .await
        .map_err(|source| DistributedError::Nats {
            url: nats_url.to_owned(),
            source,
        })?;
    let store = RedisStore::connect(redis_url)
        .await
        .map_err(|source| DistributedError::Redis {
            url: redis_url.to_owned(),
            source,
        })?;
    let rate_limiter = chat_shared::store::rate_limit::RedisRateLimiter::connect(redis_url).await?;
    Ok(Deps {
        bus,
        store: store as Arc<dyn chat_shared::store::SessionStore>,
        verifier,
        rate_limiter: Arc::new(rate_limiter),
        in_process_workers: false,
    })
}
