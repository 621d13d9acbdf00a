//! Echoes every text and binary WebSocket message on `/`, on axum's WebSocket over
//! tokio-tungstenite: what Autobahn's fuzzing client measures here is the reading side the
//! gateway is built on (framing, limits, UTF-8, control frames). Since session 10 the gateway
//! writes its own data frames (gateway/src/websocket/socket.rs, tested there against a
//! tungstenite client), which this server does not use. Listens on `LISTEN_ADDR` (default 127.0.0.1:9001);
//! `MAX_MESSAGE_BYTES` bounds a message (default 16 MiB, the largest `MAX_FRAME_BYTES` the
//! gateway accepts).

use anyhow::Context;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;

/// The gateway's per-connection socket buffer.
const SOCKET_BUFFER: usize = 4096;
const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:9001".into());
    let max = match std::env::var("MAX_MESSAGE_BYTES") {
        Ok(value) => value
            .parse()
            .context("MAX_MESSAGE_BYTES must be a byte count")?,
        Err(_) => DEFAULT_MAX_MESSAGE_BYTES,
    };
    let app = Router::new().route(
        "/",
        get(move |upgrade: WebSocketUpgrade| upgrade_echo(upgrade, max)),
    );
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("echo server listening on {addr}");
    axum::serve(listener, app).await.context("server")
}

async fn upgrade_echo(upgrade: WebSocketUpgrade, max: usize) -> Response {
    upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(echo)
}

/// Echoes until the stream ends. A received close is not the end: the socket answers it on the
/// next read, which then ends the stream (this is how the closing handshake completes).
async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => message,
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
