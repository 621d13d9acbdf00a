//! Engine.IO sessions: the registry by `sid`, and the [`Session`] of a session opened by
//! polling — its queue of server packets (taken by whichever transport is active: a long-poll
//! GET or, after an upgrade, the WebSocket), its queue of Socket.IO payloads from the client,
//! the polling → WebSocket upgrade state, and its heartbeat task (the server pings every
//! interval; no pong within interval + timeout closes it). A session opened on a WebSocket
//! needs none of that: its one task reads, writes and pings itself (`websocket.rs`); the
//! registry only knows its sid ([`Registered`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::socketio::packet::{ENGINE_PING, EnginePacket, PacketError, decode_engine};

/// Server packets queued per session before the producer waits (then the connection's own
/// outbound queue fills and the slow-consumer rule closes it).
const OUT_QUEUE: usize = 256;
/// Socket.IO payloads from a client queued before its transport stops reading.
const IN_QUEUE: usize = 64;

/// The transport a session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling = 0,
    /// A WebSocket probe succeeded; the poll in flight is being ended with a noop.
    Upgrading = 1,
    WebSocket = 2,
}

impl Transport {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Transport::Polling,
            1 => Transport::Upgrading,
            _ => Transport::WebSocket,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Polling | Transport::Upgrading => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

/// Heartbeat and size settings announced in the `open` packet.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest payload a client may send at once (a polling body or a WebSocket message).
    pub max_payload: usize,
}

/// One Engine.IO session.
pub struct Session {
    pub sid: Arc<str>,
    out_tx: mpsc::Sender<String>,
    /// Server packets; held by the active transport while it writes.
    pub out_rx: tokio::sync::Mutex<mpsc::Receiver<String>>,
    in_tx: mpsc::Sender<String>,
    transport: AtomicU8,
    /// Cancelled when a WebSocket probe succeeded: the poll in flight answers a noop.
    pub upgrade_started: CancellationToken,
    closed: CancellationToken,
    /// Set when the WebSocket writer gave up on a client that took no bytes (write timeout).
    too_slow: AtomicBool,
    started: Instant,
    last_pong_ms: AtomicU64,
}

/// A session in the registry.
#[derive(Clone)]
pub enum Entry {
    Polling(Arc<Session>),
    /// Opened on a WebSocket: nothing to poll or upgrade.
    WebSocket,
}

/// What one Engine.IO text packet from a client is.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    Pong,
    /// A Socket.IO payload.
    Payload(&'a str),
    Close,
    Noop,
    /// Not a packet the protocol allows here: ignored (the caller counts it).
    Ignored(&'static str),
}

/// Classifies one Engine.IO text packet from a client.
pub fn classify(text: &str) -> Inbound<'_> {
    match decode_engine(text) {
        Ok(EnginePacket::Pong(_)) => Inbound::Pong,
        Ok(EnginePacket::Message(payload)) => Inbound::Payload(payload),
        Ok(EnginePacket::Close) => Inbound::Close,
        Ok(EnginePacket::Noop) => Inbound::Noop,
        Ok(EnginePacket::Ping(_) | EnginePacket::Upgrade) => Inbound::Ignored("misplaced"),
        Err(PacketError::Binary) => Inbound::Ignored("binary"),
        Err(_) => Inbound::Ignored("malformed"),
    }
}

/// What a session's client packet asked for, for the transport to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    Ok,
    /// Not a packet the protocol allows here: ignored (the caller counts it).
    Ignored(&'static str),
    Closed,
}

impl Session {
    pub fn id(&self) -> &str {
        &self.sid
    }

    pub fn transport(&self) -> Transport {
        Transport::from_u8(self.transport.load(Ordering::Acquire))
    }

    pub fn set_transport(&self, transport: Transport) {
        self.transport.store(transport as u8, Ordering::Release);
    }

    /// Queues a server packet, waiting for room; false once the session is closed.
    pub async fn send(&self, packet: String) -> bool {
        tokio::select! {
            sent = self.out_tx.send(packet) => sent.is_ok(),
            _ = self.closed.cancelled() => false,
        }
    }

    /// Queues a server packet if there is room.
    pub fn try_send(&self, packet: String) -> bool {
        self.out_tx.try_send(packet).is_ok()
    }

    pub fn close(&self) {
        self.closed.cancel();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Ends a session whose client took no bytes for the write timeout (closed like `/ws`'s 4009).
    pub fn close_too_slow(&self) {
        self.too_slow.store(true, Ordering::Release);
        self.close();
    }

    pub fn is_too_slow(&self) -> bool {
        self.too_slow.load(Ordering::Acquire)
    }

    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_pong_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_pong_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Applies one Engine.IO text packet from the client.
    pub async fn on_packet(&self, text: &str) -> Handled {
        match classify(text) {
            Inbound::Pong => {
                self.touch();
                Handled::Ok
            }
            Inbound::Payload(payload) => {
                self.touch();
                let sent = tokio::select! {
                    sent = self.in_tx.send(payload.to_owned()) => sent.is_ok(),
                    _ = self.closed.cancelled() => false,
                };
                if sent { Handled::Ok } else { Handled::Closed }
            }
            Inbound::Close => {
                self.close();
                Handled::Closed
            }
            Inbound::Noop => Handled::Ok,
            Inbound::Ignored(reason) => Handled::Ignored(reason),
        }
    }
}

/// The registry of one gateway's Engine.IO sessions.
pub struct Engine {
    pub settings: EngineSettings,
    sessions: Mutex<HashMap<Arc<str>, Entry>>,
    /// Sessions in the registry now (`chat_gateway_socketio_sessions`).
    gauge: Gauge,
}

impl Engine {
    pub fn new(settings: EngineSettings, gauge: Gauge) -> Arc<Self> {
        Arc::new(Engine {
            settings,
            sessions: Mutex::new(HashMap::new()),
            gauge,
        })
    }

    /// A new polling session and the receiving end of its client payloads; its heartbeat runs
    /// until it closes, and it leaves the registry then.
    pub fn open_polling(self: &Arc<Self>) -> (Arc<Session>, mpsc::Receiver<String>) {
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        let (in_tx, in_rx) = mpsc::channel(IN_QUEUE);
        let sid: Arc<str> = Arc::from(new_sid());
        let session = Arc::new(Session {
            sid: sid.clone(),
            out_tx,
            out_rx: tokio::sync::Mutex::new(out_rx),
            in_tx,
            transport: AtomicU8::new(Transport::Polling as u8),
            upgrade_started: CancellationToken::new(),
            closed: CancellationToken::new(),
            too_slow: AtomicBool::new(false),
            started: Instant::now(),
            last_pong_ms: AtomicU64::new(0),
        });
        self.insert(sid, Entry::Polling(session.clone()));
        tokio::spawn(heartbeat(self.clone(), session.clone()));
        (session, in_rx)
    }

    /// A new WebSocket session: in the registry until the returned guard is dropped.
    pub fn open_websocket(self: &Arc<Self>) -> Registered {
        let sid: Arc<str> = Arc::from(new_sid());
        self.insert(sid.clone(), Entry::WebSocket);
        Registered {
            engine: self.clone(),
            sid,
        }
    }

    fn insert(&self, sid: Arc<str>, entry: Entry) {
        self.sessions.lock().insert(sid, entry);
        self.gauge.inc();
    }

    pub fn get(&self, sid: &str) -> Option<Entry> {
        self.sessions.lock().get(sid).cloned()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, sid: &str) {
        if self.sessions.lock().remove(sid).is_some() {
            self.gauge.dec();
        }
    }
}

/// A WebSocket session's place in the registry, left when dropped.
pub struct Registered {
    engine: Arc<Engine>,
    sid: Arc<str>,
}

impl Registered {
    pub fn sid(&self) -> &str {
        &self.sid
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.engine.remove(&self.sid);
    }
}

/// Pings every interval; closes the session when no pong (or any packet) came for interval +
/// timeout; removes it from the registry once closed.
async fn heartbeat(engine: Arc<Engine>, session: Arc<Session>) {
    let EngineSettings {
        ping_interval,
        ping_timeout,
        ..
    } = engine.settings;
    loop {
        tokio::select! {
            _ = session.closed() => break,
            _ = tokio::time::sleep(ping_interval) => {}
        }
        if session.silent_for() > ping_interval + ping_timeout {
            tracing::debug!(sid = %session.sid, "ping timeout");
            session.close();
            break;
        }
        session.try_send(ENGINE_PING.to_owned());
    }
    engine.remove(&session.sid);
}

/// A session id: unguessable, URL-safe.
fn new_sid() -> String {
    ulid::Ulid::new().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EngineSettings {
        EngineSettings {
            ping_interval: Duration::from_millis(50),
            ping_timeout: Duration::from_millis(50),
            max_payload: 1000,
        }
    }

    #[tokio::test]
    async fn packets_are_routed_and_bad_ones_ignored() {
        let engine = Engine::new(settings(), Gauge::default());
        let (session, mut inbound) = engine.open_polling();
        assert_eq!(session.on_packet("40").await, Handled::Ok);
        assert_eq!(inbound.recv().await.as_deref(), Some("0"));
        assert_eq!(session.on_packet("3").await, Handled::Ok);
        assert_eq!(session.on_packet("x").await, Handled::Ignored("malformed"));
        assert_eq!(session.on_packet("bAA==").await, Handled::Ignored("binary"));
        assert_eq!(session.on_packet("5").await, Handled::Ignored("misplaced"));
        assert_eq!(session.on_packet("1").await, Handled::Closed);
        assert!(session.is_closed());
    }

    #[tokio::test]
    async fn a_silent_session_times_out_and_leaves_the_registry() {
        let engine = Engine::new(settings(), Gauge::default());
        let (session, _inbound) = engine.open_polling();
        assert!(matches!(engine.get(session.id()), Some(Entry::Polling(_))));
        tokio::time::timeout(Duration::from_secs(5), session.closed())
            .await
            .expect("closed by the heartbeat");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(engine.get(session.id()).is_none());
    }

    #[test]
    fn a_websocket_session_is_registered_until_its_guard_drops() {
        let engine = Engine::new(settings(), Gauge::default());
        let registered = engine.open_websocket();
        let sid = registered.sid().to_owned();
        assert!(matches!(engine.get(&sid), Some(Entry::WebSocket)));
        assert_eq!(engine.len(), 1);
        drop(registered);
        assert!(engine.get(&sid).is_none());
        assert!(engine.is_empty());
    }

    #[test]
    fn client_packets_are_classified() {
        let cases = [
            ("3", Inbound::Pong),
            ("40", Inbound::Payload("0")),
            ("4", Inbound::Payload("")),
            ("1", Inbound::Close),
            ("6", Inbound::Noop),
            ("2probe", Inbound::Ignored("misplaced")),
            ("5", Inbound::Ignored("misplaced")),
            ("bAA==", Inbound::Ignored("binary")),
            ("x", Inbound::Ignored("malformed")),
            ("", Inbound::Ignored("malformed")),
        ];
        for (text, expected) in cases {
            assert_eq!(classify(text), expected, "{text:?}");
        }
    }

    #[tokio::test]
    async fn pings_are_queued_and_pongs_keep_it_open() {
        let engine = Engine::new(settings(), Gauge::default());
        let (session, _inbound) = engine.open_polling();
        for _ in 0..4 {
            let ping = {
                let mut out = session.out_rx.lock().await;
                tokio::time::timeout(Duration::from_secs(5), out.recv()).await
            };
            assert_eq!(ping.ok().flatten().as_deref(), Some("2"));
            session.on_packet("3").await;
        }
        assert!(!session.is_closed());
    }
}
