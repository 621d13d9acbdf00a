//! What the conformance cases run against: a [`Deployment`] hands out handles on one bus
//! (for NATS each handle is its own connection, as another process would have), plus the
//! message builders and waits the cases share.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::{AppendOutcome, Bus, LogEntry, MemoryBus, MemoryBusConfig};
use chat_shared::protocol::ChatMessage;
use chat_shared::protocol::identity::{Role, UserInfo};
use futures::{Stream, StreamExt};
use testkit::NatsServer;

/// Long enough for anything that is going to happen on loopback; only reached on failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The limits a case may set on a fresh bus; `None` keeps the implementation's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub retain_per_guild: Option<usize>,
    pub bot_max_attempts: Option<u32>,
}

/// One bus implementation, as the cases see it.
pub trait Deployment: Send + Sync {
    /// Another handle on the deployment's bus (a gateway, a router, a worker).
    fn bus(&self) -> impl Future<Output = Arc<dyn Bus>> + Send;
    /// A handle whose bus has these limits (the only handle a case then uses).
    fn bus_with(&self, limits: Limits) -> impl Future<Output = Arc<dyn Bus>> + Send;
}

/// The in-memory bus of embedded mode: every handle is the same instance.
pub struct Memory {
    bus: Arc<MemoryBus>,
}

impl Memory {
    pub fn new() -> Self {
        Memory {
            bus: MemoryBus::new(MemoryBusConfig::default()),
        }
    }
}

impl Deployment for Memory {
    async fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    async fn bus_with(&self, limits: Limits) -> Arc<dyn Bus> {
        let default = MemoryBusConfig::default();
        MemoryBus::new(MemoryBusConfig {
            retain_per_guild: limits.retain_per_guild.unwrap_or(default.retain_per_guild),
            bot_max_attempts: limits.bot_max_attempts.unwrap_or(default.bot_max_attempts),
            ..default
        })
    }
}

/// The NATS/JetStream bus on its own `nats-server -js`: every handle is a new connection.
pub struct Nats {
    server: NatsServer,
}

impl Nats {
    pub fn start() -> Self {
        Nats {
            server: NatsServer::start(),
        }
    }
}

impl Deployment for Nats {
    async fn bus(&self) -> Arc<dyn Bus> {
        self.bus_with(Limits::default()).await
    }

    async fn bus_with(&self, limits: Limits) -> Arc<dyn Bus> {
        let default = NatsConfig::default();
        let config = NatsConfig {
            log_retain_per_guild: limits
                .retain_per_guild
                .map_or(default.log_retain_per_guild, |n| n as i64),
            bot_max_deliver: limits
                .bot_max_attempts
                .map_or(default.bot_max_deliver, i64::from),
            ..default
        };
        NatsBus::connect(&self.server.url(), &config)
            .await
            .expect("the bus connects")
    }
}

pub fn user(id: &str) -> UserInfo {
    UserInfo::new(id, id, Role::Member)
}

pub fn message(guild: &str, id: &str, from: &str) -> ChatMessage {
    ChatMessage {
        guild_id: guild.to_owned(),
        message_id: id.to_owned(),
        admin_only: false,
        from: user(from),
        text: format!("text of {id}"),
        ts: "2026-11-26T23:00:00.000Z".to_owned(),
    }
}

pub fn admin_message(guild: &str, id: &str) -> ChatMessage {
    ChatMessage {
        admin_only: true,
        from: UserInfo::new("root", "root", Role::Admin),
        ..message(guild, id, "root")
    }
}

/// Appends a message that must be new, returning its entry.
pub async fn append_new(bus: &dyn Bus, message: ChatMessage) -> LogEntry {
    match bus.append(message).await.expect("append works") {
        AppendOutcome::Appended(entry) => entry,
        other => panic!("expected a fresh append, got {other:?}"),
    }
}

/// The next item of a stream, failing the test if none comes.
pub async fn next<T>(stream: &mut (impl Stream<Item = T> + Unpin)) -> T {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an item arrives")
        .expect("the stream goes on")
}

pub fn seqs(entries: &[LogEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

pub fn ids(entries: &[LogEntry]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e.message.message_id.as_str())
        .collect()
}

/// The next value sent on a channel, failing the test if none comes.
pub async fn received<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("a value arrives")
        .expect("the channel stays open")
}
