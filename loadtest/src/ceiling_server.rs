//! The ceiling: a bare broadcast server on the same socket stack as the gateway (axum 0.8
//! `ws`), with no auth, no bus, no router and no log. A client's `send` gets a per-guild seq,
//! is encoded once per encoding and queued to every connection of the guild; each connection
//! has a writer task with a bounded queue that writes everything queued, then flushes once.
//! It answers `hello`, `ack`, `pong` and an empty `resumed` so the same clients can drive it.
//! Guilds come from the query string: `/ws?guilds=g1,g2&encoding=msgpack`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use chat_shared::clock::iso_now;
use chat_shared::protocol::codec::{self, Encoding};
use chat_shared::protocol::identity::{Role, UserInfo};
use chat_shared::protocol::*;
use futures::{SinkExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames queued per connection before it counts as too slow (closed with 4009).
const QUEUE_FRAMES: usize = 4096;
/// WebSocket read/write buffer sizes.
const BUFFER_BYTES: usize = 4096;
/// Name prefix of the in-process server's runtime threads (see [`crate::watch`]).
pub const THREAD_PREFIX: &str = "ceiling-srv";

struct Member {
    connection: u64,
    encoding: Encoding,
    queue: mpsc::Sender<Message>,
    kick: CancellationToken,
}

#[derive(Default)]
struct Guild {
    seq: u64,
    members: Vec<Member>,
}

#[derive(Default)]
struct Hub {
    guilds: RwLock<HashMap<String, Arc<Mutex<Guild>>>>,
    next_connection: AtomicU64,
}

impl Hub {
    fn guild(&self, id: &str) -> Arc<Mutex<Guild>> {
        if let Some(guild) = self.guilds.read().get(id) {
            return guild.clone();
        }
        self.guilds
            .write()
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    fn existing_guild(&self, id: &str) -> Option<Arc<Mutex<Guild>>> {
        self.guilds.read().get(id).cloned()
    }
}

#[derive(Deserialize)]
struct WsParams {
    #[serde(default)]
    guilds: String,
    #[serde(default)]
    encoding: Option<String>,
}

/// Serves the ceiling on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, stop: CancellationToken) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(Hub::default()));
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// A ceiling server running on its own runtime threads inside this process.
pub struct InProcessCeiling {
    pub addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessCeiling {
    /// Binds `127.0.0.1:0` and serves on a 2-thread runtime named [`THREAD_PREFIX`].
    pub fn start() -> std::io::Result<InProcessCeiling> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREAD_PREFIX)
            .enable_all()
            .build()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_PREFIX.to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(std_listener) {
                        Ok(listener) => {
                            if let Err(e) = serve(listener, token).await {
                                tracing::error!(error = %e, "ceiling server failed");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "ceiling listener failed"),
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(InProcessCeiling {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The `ws://` URL of the server.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the server and waits for its thread.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for InProcessCeiling {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(params): Query<WsParams>,
    State(hub): State<Arc<Hub>>,
) -> impl IntoResponse {
    let encoding = params
        .encoding
        .as_deref()
        .and_then(Encoding::parse)
        .unwrap_or_default();
    let guilds: Vec<String> = params
        .guilds
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    ws.read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
        .on_upgrade(move |socket| connection(socket, hub, guilds, encoding))
}

fn encode_frame(frame: &ServerFrame, encoding: Encoding) -> Option<Message> {
    let bytes: Bytes = codec::encode_server_frame(frame, encoding).ok()?;
    if encoding.is_binary() {
        Some(Message::Binary(bytes))
    } else {
        Utf8Bytes::try_from(bytes).ok().map(Message::Text)
    }
}

async fn connection(socket: WebSocket, hub: Arc<Hub>, guilds: Vec<String>, encoding: Encoding) {
    let id = hub.next_connection.fetch_add(1, Relaxed);
    let user = UserInfo::new(format!("c{id}"), format!("c{id}"), Role::Member);
    let (sink, mut stream) = socket.split();
    let (queue, queued) = mpsc::channel(QUEUE_FRAMES);
    let kick = CancellationToken::new();
    let writer = tokio::spawn(write_queued(sink, queued, kick.clone()));
    for guild in &guilds {
        hub.guild(guild).lock().members.push(Member {
            connection: id,
            encoding,
            queue: queue.clone(),
            kick: kick.clone(),
        });
    }
    let hello = ServerFrame::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        connection_id: format!("c{id}"),
        user: user.clone(),
        guilds: guilds.clone(),
        admin: false,
        heartbeat_ms: 25_000,
        max_text_chars: 2000,
    });
    let reply = |frame: ServerFrame| {
        if let Some(message) = encode_frame(&frame, encoding) {
            let _ = queue.try_send(message);
        }
    };
    reply(hello);
    loop {
        let message = tokio::select! {
            _ = kick.cancelled() => break,
            next = stream.next() => match next {
                Some(Ok(message)) => message,
                _ => break,
            },
        };
        let bytes = match message {
            Message::Text(text) => Bytes::from(text),
            Message::Binary(bytes) => bytes,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match codec::decode_client_frame(&bytes, encoding) {
            Ok(ClientFrame::Send(send)) => {
                if let Some(ack) = broadcast(&hub, &guilds, &user, send) {
                    reply(ack);
                }
            }
            Ok(ClientFrame::Ping(ping)) => reply(ServerFrame::Pong(Pong {
                reference: ping.reference,
            })),
            Ok(ClientFrame::Resume(resume)) => {
                for guild_id in resume.positions.into_keys() {
                    reply(ServerFrame::Resumed(Resumed {
                        guild_id,
                        replayed: 0,
                        gap: false,
                    }));
                }
            }
            Ok(ClientFrame::Refresh(refresh)) => reply(ServerFrame::Error(ErrorFrame::new(
                ErrorCode::NotAuthorized,
                refresh.reference,
            ))),
            // Presence (issue #13): the ceiling server keeps no presence; typing is dropped.
            Ok(ClientFrame::Typing(_)) => {}
            Err(e) => reply(ServerFrame::Error(ErrorFrame::new(
                ErrorCode::BadFrame,
                e.reference,
            ))),
        }
    }
    for guild in &guilds {
        if let Some(guild) = hub.existing_guild(guild) {
            guild.lock().members.retain(|m| m.connection != id);
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// Stamps, encodes once per encoding and queues a message to every member; returns the ack.
fn broadcast(hub: &Hub, own: &[String], from: &UserInfo, send: SendFrame) -> Option<ServerFrame> {
    let guild_id = send.guild_id.filter(|g| own.contains(g));
    let Some(guild_id) = guild_id else {
        return Some(ServerFrame::Error(ErrorFrame::new(
            ErrorCode::ForbiddenGuild,
            send.reference,
        )));
    };
    let message_id = send
        .message_id
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    let guild = hub.guild(&guild_id);
    let mut guild = guild.lock();
    guild.seq += 1;
    let seq = guild.seq;
    let frame = ServerFrame::Message(SequencedMessage {
        seq,
        message: Arc::new(ChatMessage {
            guild_id,
            message_id: message_id.clone(),
            admin_only: false,
            from: from.clone(),
            text: send.text.unwrap_or_default(),
            ts: iso_now(),
        }),
    });
    let mut encoded: [Option<Message>; 2] = [None, None];
    for member in &guild.members {
        let slot = usize::from(member.encoding.is_binary());
        if encoded[slot].is_none() {
            encoded[slot] = encode_frame(&frame, member.encoding);
        }
        if let Some(message) = &encoded[slot]
            && member.queue.try_send(message.clone()).is_err()
        {
            member.kick.cancel();
        }
    }
    Some(ServerFrame::Ack(Ack {
        reference: send.reference,
        message_id,
        seq,
    }))
}

/// Writes everything queued, then flushes once; closes with 4009 when kicked.
async fn write_queued(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Message>,
    kick: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = kick.cancelled() => {
                let close = CloseFrame { code: close_code::TOO_SLOW, reason: "too slow".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
                return;
            }
            next = queued.recv() => match next {
                Some(message) => message,
                None => break,
            },
        };
        if sink.feed(first).await.is_err() {
            return;
        }
        while let Ok(next) = queued.try_recv() {
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}
