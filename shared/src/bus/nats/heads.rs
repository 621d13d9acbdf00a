//! The last seq of each guild as this process last saw it, behind a per-guild async mutex so
//! that appends of one guild are serialised within the process (across processes the
//! `Nats-Expected-Last-Subject-Sequence` check does that).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The cached head of one guild: `None` until read from the stream.
pub type Head = Option<u64>;

#[derive(Default)]
pub struct GuildHeads {
    heads: Mutex<HashMap<String, Arc<AsyncMutex<Head>>>>,
}

impl GuildHeads {
    /// Waits for the guild's turn; the guard holds its cached head.
    pub async fn lock(&self, guild_id: &str) -> OwnedMutexGuard<Head> {
        let head = self
            .heads
            .lock()
            .entry(guild_id.to_owned())
            .or_default()
            .clone();
        head.lock_owned().await
    }
}
