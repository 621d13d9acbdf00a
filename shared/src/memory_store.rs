//! The in-memory session store of embedded mode.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::session::{Session, SessionStore, StoreError};

#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: RwLock<HashMap<String, Session>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
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
}
