//! What the store conformance cases run against: a store, and the server behind it if any.

use std::sync::Arc;

use chat_shared::store::{MemoryStore, RedisStore, SessionStore};
use testkit::RedisServer;

/// One store implementation with what keeps it alive for the test.
pub struct Deployment {
    pub store: Arc<dyn SessionStore>,
    _redis: Option<RedisServer>,
}

impl Deployment {
    pub async fn memory() -> Self {
        Deployment {
            store: Arc::new(MemoryStore::new()),
            _redis: None,
        }
    }

    pub async fn redis() -> Self {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url())
            .await
            .expect("the store connects");
        Deployment {
            store,
            _redis: Some(redis),
        }
    }
}
