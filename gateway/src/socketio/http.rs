//! The `/socket.io/` requests: the Engine.IO handshake, HTTP long-polling (GET waits for
//! server packets, POST carries client packets), the WebSocket transport (a new session runs
//! in `websocket.rs`), and the upgrade from polling to WebSocket (`2probe` / `3probe`, a noop
//! to end the poll in flight, then `5`; the upgraded WebSocket then carries the polling
//! session's queues). Protocol errors answer 400 with Engine.IO's `{code, message}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tracing::Instrument;
use tungstenite::Message;

use crate::socketio::SocketIo;
use crate::socketio::carrier::Queues;
use crate::socketio::engine::{Entry, Handled, Session, Transport};
use crate::socketio::packet::{
    ENGINE_CLOSE, ENGINE_NOOP, PROBE_PONG, SEPARATOR, encode_open, join_payload, split_payload,
};
use crate::socketio::session::{self, Handshake};
use crate::socketio::websocket;
use crate::websocket::{Stream, Upgrade, UpgradeRejection, WebSocket};

/// Longest wait for each step of an upgrade (`2probe`, then `5`).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of queued messages that trigger a write before the flush, on an upgraded polling
/// session (a new WebSocket session writes its data frames itself, see `crate::websocket`).
const WS_WRITE_BUFFER: usize = 4096;
/// The response header of a polling handshake that names the new session.
const SID_HEADER: &str = "x-socketio-sid";
/// Bytes of packets one poll answers at most; the rest waits for the next poll.
const MAX_POLL_BYTES: usize = 1 << 20;

/// Engine.IO's error answers.
#[derive(Debug, Clone, Copy)]
enum EngineError {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    UnsupportedProtocol = 5,
}

impl EngineError {
    fn message(self) -> &'static str {
        match self {
            EngineError::UnknownTransport => "Transport unknown",
            EngineError::UnknownSid => "Session ID unknown",
            EngineError::BadHandshakeMethod => "Bad handshake method",
            EngineError::BadRequest => "Bad request",
            EngineError::UnsupportedProtocol => "Unsupported protocol version",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            EngineError::UnknownTransport => "unknown_transport",
            EngineError::UnknownSid => "unknown_sid",
            EngineError::BadHandshakeMethod => "bad_handshake_method",
            EngineError::BadRequest => "bad_request",
            EngineError::UnsupportedProtocol => "unsupported_protocol",
        }
    }
}

/// Every request to `/socket.io/`.
pub async fn handle(
    State(io): State<Arc<SocketIo>>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    upgrade: Result<Upgrade, UpgradeRejection>,
    body: Body,
) -> Response {
    let mut response = route(&io, &query, &method, &headers, upgrade, body).await;
    io.add_cors(&headers, response.headers_mut());
    response
}

async fn route(
    io: &Arc<SocketIo>,
    query: &HashMap<String, String>,
    method: &Method,
    headers: &HeaderMap,
    upgrade: Result<Upgrade, UpgradeRejection>,
    body: Body,
) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::NO_CONTENT.into_response();
    }
    if query.get("EIO").map(String::as_str) != Some("4") {
        return refuse(io, EngineError::UnsupportedProtocol);
    }
    let sid = query.get("sid").map(String::as_str);
    match (query.get("transport").map(String::as_str), sid) {
        (Some("polling"), None) if method == Method::GET => open_polling(io, headers),
        (Some("polling"), None) => refuse(io, EngineError::BadHandshakeMethod),
        (Some("polling"), Some(sid)) => match io.engine.get(sid) {
            None => refuse(io, EngineError::UnknownSid),
            Some(Entry::WebSocket) => refuse(io, EngineError::BadRequest),
            Some(Entry::Polling(session)) if method == Method::GET => poll(io, session).await,
            Some(Entry::Polling(session)) if method == Method::POST => {
                post(io, session, body).await
            }
            Some(Entry::Polling(_)) => refuse(io, EngineError::BadHandshakeMethod),
        },
        (Some("websocket"), sid) => {
            let Ok(upgrade) = upgrade else {
                return refuse(io, EngineError::BadRequest);
            };
            websocket(io, headers, sid, upgrade)
        }
        _ => refuse(io, EngineError::UnknownTransport),
    }
}

fn refuse(io: &SocketIo, error: EngineError) -> Response {
    io.metrics.ignored(error.reason());
    let body = json!({ "code": error as u8, "message": error.message() });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn text(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// Too many sessions without a socket yet would be a cheap way to hold memory: bounded by the
/// node's connection cap plus its handshakes in flight (the CONNECT then answers admission's
/// own refusal, `unavailable`, as a CONNECT_ERROR).
fn engine_full(io: &SocketIo) -> bool {
    let limits = &io.state.config.connection_limits;
    let cap = limits.max_connections as usize;
    let slack = (limits.max_handshakes_in_flight as usize).max(16);
    cap != 0 && io.engine.len() >= cap + slack
}

/// A new polling session and its socket task; the answer is the `open` packet.
fn start_polling(io: &Arc<SocketIo>, headers: &HeaderMap) -> Arc<Session> {
    let handshake = Handshake::from_headers(io, headers);
    let (session, inbound) = io.engine.open_polling();
    io.metrics.opened(Transport::Polling);
    let span = tracing::info_span!(
        "socketio.session",
        sid = session.id(),
        transport = "polling"
    );
    let mut queues = Queues {
        session: session.clone(),
        inbound,
    };
    let io = io.clone();
    tokio::spawn(async move { session::run(&io, &mut queues, handshake).await }.instrument(span));
    session
}

/// The Engine.IO `open` packet of session `sid`.
pub fn open_packet(io: &SocketIo, sid: &str, upgrades: &[&str]) -> String {
    let settings = io.engine.settings;
    encode_open(
        sid,
        upgrades,
        settings.ping_interval.as_millis() as u64,
        settings.ping_timeout.as_millis() as u64,
        settings.max_payload,
    )
}

fn open_polling(io: &Arc<SocketIo>, headers: &HeaderMap) -> Response {
    if engine_full(io) {
        return crate::http::auth::ApiError::unavailable().into_response();
    }
    let session = start_polling(io, headers);
    let mut response = text(open_packet(io, session.id(), &["websocket"]));
    // What a load balancer learns the session's gateway from (deploy/haproxy.cfg sticks on it).
    if let Ok(sid) = HeaderValue::from_str(session.id()) {
        response.headers_mut().insert(SID_HEADER, sid);
    }
    response
}

/// A long-poll: waits for server packets and answers all that are queued (a noop when an
/// upgrade ends the poll, the close packet when the session ends).
async fn poll(io: &SocketIo, session: Arc<Session>) -> Response {
    if session.transport() == Transport::WebSocket {
        return refuse(io, EngineError::BadRequest);
    }
    let Ok(mut out) = session.out_rx.try_lock() else {
        // Two polls at once break the protocol: the session ends.
        session.close();
        return refuse(io, EngineError::BadRequest);
    };
    if session.upgrade_started.is_cancelled() {
        return text(ENGINE_NOOP.to_owned());
    }
    let mut packets = Vec::new();
    tokio::select! {
        first = out.recv() => packets.extend(first),
        _ = session.upgrade_started.cancelled() => return text(ENGINE_NOOP.to_owned()),
        _ = session.closed() => {}
    }
    let mut bytes = packets.iter().map(String::len).sum::<usize>();
    while bytes < MAX_POLL_BYTES {
        let Ok(next) = out.try_recv() else { break };
        bytes += next.len() + 1;
        packets.push(next);
    }
    if session.is_closed() {
        packets.push(ENGINE_CLOSE.to_owned());
    }
    text(join_payload(packets.iter().map(String::as_str)))
}

/// Client packets of a polling session.
async fn post(io: &SocketIo, session: Arc<Session>, body: Body) -> Response {
    if session.transport() == Transport::WebSocket {
        return refuse(io, EngineError::BadRequest);
    }
    let Ok(bytes) = axum::body::to_bytes(body, io.engine.settings.max_payload).await else {
        io.metrics.ignored("oversized_body");
        session.close();
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let Ok(body) = std::str::from_utf8(&bytes) else {
        return refuse(io, EngineError::BadRequest);
    };
    for packet in split_payload(body) {
        match session.on_packet(packet).await {
            Handled::Ok => io.metrics.packet_in(Transport::Polling),
            Handled::Ignored(reason) => io.metrics.ignored(reason),
            Handled::Closed => break,
        }
    }
    text("ok".to_owned())
}

/// The WebSocket transport: a new session, or the upgrade of a polling one.
fn websocket(
    io: &Arc<SocketIo>,
    headers: &HeaderMap,
    sid: Option<&str>,
    upgrade: Upgrade,
) -> Response {
    let max = io.engine.settings.max_payload;
    let config = crate::websocket::config(max, WS_WRITE_BUFFER);
    let Some(sid) = sid else {
        if engine_full(io) {
            return crate::http::auth::ApiError::unavailable().into_response();
        }
        let registered = io.engine.open_websocket();
        io.metrics.opened(Transport::WebSocket);
        let (io, handshake) = (io.clone(), Handshake::from_headers(io, headers));
        return upgrade.on_upgrade(config, move |stream| {
            websocket::serve(io, WebSocket::new(stream), registered, handshake)
        });
    };
    let session = match io.engine.get(sid) {
        None => return refuse(io, EngineError::UnknownSid),
        Some(Entry::Polling(s))
            if s.transport() == Transport::Polling && !s.upgrade_started.is_cancelled() =>
        {
            s
        }
        Some(_) => return refuse(io, EngineError::BadRequest),
    };
    let io = io.clone();
    upgrade.on_upgrade(config, move |socket| async move {
        let (mut sink, mut stream) = socket.split();
        if !probe(&mut sink, &mut stream, &session).await {
            return;
        }
        io.metrics.upgraded();
        run_websocket(&io, session, sink, stream).await;
    })
}

/// The upgrade handshake on the new WebSocket; false when it did not complete (a session
/// whose poll was already ended with a noop is closed then).
async fn probe(
    sink: &mut SplitSink<Stream, Message>,
    stream: &mut SplitStream<Stream>,
    session: &Session,
) -> bool {
    let first = tokio::time::timeout(UPGRADE_TIMEOUT, stream.next()).await;
    if !matches!(first, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == "2probe") {
        return false;
    }
    if sink.send(Message::Text(PROBE_PONG.into())).await.is_err() {
        return false;
    }
    session.upgrade_started.cancel();
    let upgraded = tokio::time::timeout(UPGRADE_TIMEOUT, async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(t) = message {
                if t.as_str() == "5" {
                    return true;
                }
                if t.as_str() != "2probe" {
                    return false;
                }
            }
        }
        false
    })
    .await;
    if upgraded != Ok(true) {
        session.close();
        return false;
    }
    session.set_transport(Transport::WebSocket);
    true
}

/// The WebSocket of an upgraded polling session: reads client packets into the session while
/// a writer task sends the session's queued packets, until either ends.
async fn run_websocket(
    io: &SocketIo,
    session: Arc<Session>,
    sink: SplitSink<Stream, Message>,
    mut stream: SplitStream<Stream>,
) {
    // A client that takes no bytes for `WRITE_TIMEOUT_MS` is closed, as on /ws.
    let write_timeout = io.state.config.outbound.write_timeout();
    let writer = tokio::spawn(write_websocket(session.clone(), sink, write_timeout));
    loop {
        let message = tokio::select! {
            _ = session.closed() => break,
            message = stream.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                // One message is one packet; a stray separator means a client bug, not a batch.
                if text.as_str().contains(SEPARATOR) {
                    io.metrics.ignored("malformed");
                    continue;
                }
                match session.on_packet(text.as_str()).await {
                    Handled::Ok => io.metrics.packet_in(Transport::WebSocket),
                    Handled::Ignored(reason) => io.metrics.ignored(reason),
                    Handled::Closed => break,
                }
            }
            Some(Ok(Message::Binary(_))) => io.metrics.ignored("binary"),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
        }
    }
    session.close();
    let _ = writer.await;
}

/// Writes the session's packets to the WebSocket; after the session ends, what is still
/// queued, then the close frame.
async fn write_websocket(
    session: Arc<Session>,
    mut sink: SplitSink<Stream, Message>,
    write_timeout: Duration,
) {
    let mut out = session.out_rx.lock().await;
    loop {
        let packet = tokio::select! {
            packet = out.recv() => packet,
            _ = session.closed() => break,
        };
        let Some(packet) = packet else { break };
        let sent =
            tokio::time::timeout(write_timeout, sink.send(Message::Text(packet.into()))).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                session.close();
                return;
            }
            Err(_) => {
                session.close_too_slow();
                return;
            }
        }
    }
    while let Ok(packet) = out.try_recv() {
        let sent =
            tokio::time::timeout(write_timeout, sink.send(Message::Text(packet.into()))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
    let _ = tokio::time::timeout(write_timeout, sink.send(Message::Close(None))).await;
}
