//! What a socket's loop (`session.rs`) needs of its transport: the client's next Socket.IO
//! payload, a way to write server packets, how long the client has been silent, and the end.
//! Two carriers: a WebSocket session's own socket (`websocket.rs`: read and written by the
//! loop itself) and, here, the queues of a session opened by polling ([`Queues`]), which
//! the long-poll requests — or the WebSocket it upgraded to — read and fill.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::socketio::engine::Session;
use crate::socketio::server_packet::ServerPacket;
use crate::socketio::timers::Heartbeat;

/// A socket's transport, as its loop sees it.
pub trait Carrier: Send {
    /// The heartbeat the loop keeps for this transport (`None`: someone else pings it).
    fn heartbeat(&self) -> Option<Heartbeat>;

    /// The client's next Socket.IO payload; `None` once the transport ended.
    fn recv(&mut self) -> impl Future<Output = Option<String>> + Send;

    /// Writes `packets` in order (draining it); false once the transport is gone.
    fn write(&mut self, packets: &mut Vec<ServerPacket>) -> impl Future<Output = bool> + Send;

    /// How long since the client's last pong or message.
    fn silent_for(&self) -> Duration;

    /// Whether the transport gave up on a client that took no bytes (too slow).
    fn too_slow(&self) -> bool;

    /// Ends the transport after the loop: what is still in `packets` goes out if it can.
    fn finish(&mut self, packets: Vec<ServerPacket>) -> impl Future<Output = ()> + Send;
}

/// A polling session's queues: payloads the POSTs brought, packets for the polls (or the
/// WebSocket after an upgrade).
pub struct Queues {
    pub session: Arc<Session>,
    pub inbound: mpsc::Receiver<String>,
}

impl Carrier for Queues {
    fn heartbeat(&self) -> Option<Heartbeat> {
        None
    }

    async fn recv(&mut self) -> Option<String> {
        tokio::select! {
            payload = self.inbound.recv() => payload,
            _ = self.session.closed() => None,
        }
    }

    async fn write(&mut self, packets: &mut Vec<ServerPacket>) -> bool {
        for packet in packets.drain(..) {
            if !self.session.send(packet.into_text()).await {
                return false;
            }
        }
        true
    }

    fn silent_for(&self) -> Duration {
        Duration::ZERO
    }

    fn too_slow(&self) -> bool {
        self.session.is_too_slow()
    }

    async fn finish(&mut self, packets: Vec<ServerPacket>) {
        for packet in packets {
            self.session.try_send(packet.into_text());
        }
        self.session.close();
    }
}
