//! The loop of one Socket.IO socket, over either transport ([`Carrier`]): in one task it
//! reads the client's packets, pops the hub's queue, takes the answers of its sends (up to
//! [`crate::in_flight::MAX_SENDS_IN_FLIGHT`] at once, answered in order; reading pauses
//! beyond) and keeps its timers (heartbeat on a WebSocket, the CONNECT deadline, token
//! expiry), and writes what each step produced before the next. The protocol itself is in [`crate::socketio::socket`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use tokio::time::Instant;

use crate::in_flight::InFlight;
use crate::socketio::SocketIo;
use crate::socketio::bridge::{Flow, Next};
use crate::socketio::carrier::Carrier;
use crate::socketio::server_packet::ServerPacket;
use crate::socketio::socket::{Socket, Step};
use crate::socketio::timers::Timers;

/// How long a session may stay without a CONNECT (socket.io's own default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// What the request that opened the session said about its client.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// The token of the `JWT_COOKIE_NAME` cookie (or `Authorization: Bearer`).
    pub header_token: Option<String>,
    pub origin_ok: bool,
}

impl Handshake {
    pub fn from_headers(io: &SocketIo, headers: &HeaderMap) -> Self {
        let header_token = crate::http::auth::request_token(&io.state, headers).map(str::to_owned);
        Handshake {
            header_token,
            origin_ok: io.origin_allowed(headers),
        }
    }
}

/// What the loop holds besides the socket.
struct Loop {
    timers: Timers,
    /// The hub's queue, once connected.
    flow: Option<Flow>,
    /// The sends waiting for the router, answered in order.
    sends: InFlight<Option<String>>,
    /// What the last step produced, written before the next.
    out: Vec<ServerPacket>,
}

/// Runs a socket over `carrier` until either side ends it.
pub async fn run<C: Carrier>(io: &Arc<SocketIo>, carrier: &mut C, handshake: Handshake) {
    let mut socket = Socket::new(io.clone(), handshake);
    let mut state = Loop {
        timers: Timers::new(Instant::now(), carrier.heartbeat(), CONNECT_TIMEOUT),
        flow: None,
        sends: InFlight::default(),
        out: Vec::new(),
    };
    let sleep = tokio::time::sleep_until(state.timers.next());
    tokio::pin!(sleep);
    loop {
        // Writing comes first (biased); the rare and larger steps are boxed, so what an idle
        // socket keeps is only this loop's state.
        let step = tokio::select! {
            biased;
            // One waiter for the queue and the close request (the queue says closed first).
            next = next_item(&mut state.flow) => match (next, state.flow.as_mut()) {
                (Some(Next::Item(item)), Some(flow)) => {
                    flow.batch(item, &mut state.out);
                    Step::Go
                }
                (Some(Next::GuildsChanged), Some(flow)) => {
                    Box::pin(socket.follow_guilds(flow, &mut state.out)).await;
                    Step::Go
                }
                _ => socket.on_close_request(socket.close_code(), &mut state.out),
            },
            ack = state.sends.next() => {
                state.out.extend(ack.map(ServerPacket::from));
                Step::Go
            }
            () = &mut sleep => {
                let wake = state.timers.wake(Instant::now(), carrier.silent_for());
                sleep.as_mut().reset(state.timers.next());
                socket.on_wake(wake, &mut state.out)
            }
            payload = carrier.recv(), if state.sends.has_room() => match payload {
                Some(payload) => Box::pin(socket.on_payload(&payload, &mut state.out)).await,
                None => Step::End,
            },
        };
        match step {
            Step::Go => {}
            Step::Started(flow) => {
                state.flow = Some(flow);
                state.timers.connected(Instant::now(), socket.token_left());
                sleep.as_mut().reset(state.timers.next());
            }
            Step::Send(sending) => state.sends.push(sending),
            Step::End => break,
        }
        if !state.out.is_empty() && !Box::pin(write(carrier, &mut state.out, &socket)).await {
            break;
        }
        if state.flow.as_mut().is_none_or(Flow::idle) && state.out.capacity() > 0 {
            state.out = Vec::new();
        }
    }
    socket.end(carrier.too_slow(), state.flow.is_some());
    Box::pin(carrier.finish(state.out)).await;
}

/// Writes `out`; a close request interrupts a write stuck on a client that stopped reading
/// (the loop handles it next). False once the transport is gone.
async fn write<C: Carrier>(carrier: &mut C, out: &mut Vec<ServerPacket>, socket: &Socket) -> bool {
    let written = tokio::select! {
        written = carrier.write(out) => written,
        _ = socket.close_requested() => true,
    };
    out.clear();
    written
}

/// The next item or guild change of a started socket's queue, `None` once it is asked to
/// close (pending before it starts: only a connected socket is asked to close).
async fn next_item(flow: &mut Option<Flow>) -> Option<Next> {
    match flow {
        Some(flow) => flow.next().await,
        None => std::future::pending().await,
    }
}
