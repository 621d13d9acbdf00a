//! Helpers shared by the NATS bus tests.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::bus::nats::payload::{LogRecord, decode};
use chat_shared::bus::nats::subjects::LOG_STREAM;
use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::{AppendOutcome, Bus, LogEntry};
use chat_shared::protocol::ChatMessage;
use chat_shared::protocol::identity::{Role, UserInfo};
use futures::{Stream, StreamExt};
use testkit::NatsServer;

/// Long enough for anything that is going to happen on loopback; only reached on failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub async fn bus(server: &NatsServer) -> Arc<NatsBus> {
    bus_with(server, NatsConfig::default()).await
}

pub async fn bus_with(server: &NatsServer, config: NatsConfig) -> Arc<NatsBus> {
    NatsBus::connect(&server.url(), &config)
        .await
        .expect("the bus connects")
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

/// Appends a message that must be new, returning its entry.
pub async fn append_new(bus: &NatsBus, message: ChatMessage) -> LogEntry {
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

pub fn ids(entries: &[LogEntry]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e.message.message_id.as_str())
        .collect()
}

/// A plain client, to put on the wire what the bus itself never would.
pub async fn raw_client(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(server.url())
        .await
        .expect("raw client connects")
}

/// The next value sent on a channel, failing the test if none comes.
pub async fn received<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("a value arrives")
        .expect("the channel stays open")
}

/// Seqs reserved per `CHAT_LOG` record: entry `i` of the record at stream sequence `s` has
/// seq `s · 1024 + i` (docs/architecture.md).
pub const RECORD_SPAN: u64 = 1024;

/// The stored record holding `seq`, read back with a stream message get (not a direct get, so
/// the direct-get counters of `history_cost` do not see it).
pub async fn stored_record(server: &NatsServer, seq: u64) -> LogRecord {
    let js = async_nats::jetstream::new(raw_client(server).await);
    let stream = js.get_stream(LOG_STREAM).await.expect("the log stream");
    let raw = (stream.get_raw_message(seq / RECORD_SPAN).await).expect("the record is stored");
    decode(&raw.payload).expect("the record decodes")
}
