//! A session opened on a WebSocket, in one task: the socket's loop (`session.rs`) reads the
//! WebSocket, writes to it straight from the loop (no Engine.IO queues) and keeps the
//! heartbeat itself; data frames are written from the packets' own bytes
//! ([`crate::websocket::WebSocket`]). One message is one Engine.IO packet. A client that takes
//! no bytes for `WRITE_TIMEOUT_MS` is closed as too slow, as on `/ws`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;
use tungstenite::Message;

use crate::socketio::SocketIo;
use crate::socketio::carrier::Carrier;
use crate::socketio::engine::{Inbound, Registered, Transport, classify};
use crate::socketio::packet::SEPARATOR;
use crate::socketio::server_packet::ServerPacket;
use crate::socketio::session::{self, Handshake};
use crate::socketio::timers::Heartbeat;
use crate::websocket::{Stalled, WebSocket};

/// Longest wait for the close frame to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A WebSocket session's socket, read and written by its loop.
pub struct Direct {
    socket: WebSocket,
    io: Arc<SocketIo>,
    heartbeat: Heartbeat,
    write_timeout: Duration,
    last_heard: Instant,
    too_slow: bool,
}

/// A new WebSocket session, run until either side ends it: the `open` packet, then the
/// socket. The session stays in the registry as long as this runs.
pub fn serve(
    io: Arc<SocketIo>,
    socket: WebSocket,
    registered: Registered,
    handshake: Handshake,
) -> impl Future<Output = ()> + Send + 'static {
    let settings = io.engine.settings;
    let open = crate::socketio::http::open_packet(&io, registered.sid(), &[]);
    let mut direct = Direct {
        socket,
        heartbeat: Heartbeat {
            interval: settings.ping_interval,
            timeout: settings.ping_timeout,
        },
        write_timeout: io.state.config.outbound.write_timeout(),
        last_heard: Instant::now(),
        too_slow: false,
        io: io.clone(),
    };
    let span = tracing::info_span!(
        "socketio.session",
        sid = registered.sid(),
        transport = "websocket"
    );
    // The parts live once, in this block, and the loop borrows them (an `async fn` taking
    // them by value would keep each twice in the task).
    async move {
        if direct.write(&mut vec![open.into()]).await {
            session::run(&io, &mut direct, handshake).await;
        }
        drop(registered);
    }
    .instrument(span)
}

impl Direct {
    /// Writes what was fed, given up when the peer takes no bytes for the write timeout;
    /// false when writing must stop.
    async fn flush(&mut self) -> bool {
        match self.socket.flush_within(self.write_timeout).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(Stalled) => {
                self.too_slow = true;
                false
            }
        }
    }

    /// One Engine.IO packet from the client: a payload for the socket, or `None` when it was
    /// handled here (pong, noop, ignored) — `Some(None)` when the client closed.
    fn on_text(&mut self, text: &str) -> Option<Option<String>> {
        let metrics = &self.io.metrics;
        // One message is one packet; a stray separator means a client bug, not a batch.
        if text.contains(SEPARATOR) {
            metrics.ignored("malformed");
            return None;
        }
        match classify(text) {
            Inbound::Pong => self.last_heard = Instant::now(),
            Inbound::Payload(payload) => {
                self.last_heard = Instant::now();
                metrics.packet_in(Transport::WebSocket);
                return Some(Some(payload.to_owned()));
            }
            Inbound::Close => return Some(None),
            Inbound::Noop => {}
            Inbound::Ignored(reason) => {
                metrics.ignored(reason);
                return None;
            }
        }
        metrics.packet_in(Transport::WebSocket);
        None
    }
}

impl Carrier for Direct {
    fn heartbeat(&self) -> Option<Heartbeat> {
        Some(self.heartbeat)
    }

    async fn recv(&mut self) -> Option<String> {
        loop {
            match self.socket.next().await? {
                Ok(Message::Text(text)) => {
                    if let Some(payload) = self.on_text(text.as_str()) {
                        return payload;
                    }
                }
                Ok(Message::Binary(_)) => self.io.metrics.ignored("binary"),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) | Err(_) => return None,
            }
        }
    }

    async fn write(&mut self, packets: &mut Vec<ServerPacket>) -> bool {
        for packet in packets.drain(..) {
            let (head, tail) = packet.into_parts();
            self.socket.feed_text_parts(head, tail);
        }
        self.flush().await
    }

    fn silent_for(&self) -> Duration {
        self.last_heard.elapsed()
    }

    fn too_slow(&self) -> bool {
        self.too_slow
    }

    async fn finish(&mut self, mut packets: Vec<ServerPacket>) {
        if self.too_slow || !self.write(&mut packets).await {
            return;
        }
        let close = self.socket.send(Message::Close(None));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
}
