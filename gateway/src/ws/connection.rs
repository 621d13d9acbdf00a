//! One connection's life: `hello`, then reading client frames (send, resume, ping) while the
//! writer task drains the outbound queue. Sends are handed to the router one after another in
//! the order they arrived and answered in that order; a bad frame is answered with `bad_frame` and the
//! connection stays open.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use chat_shared::bus::{INTERNAL_VERSION, SendRequest, Visibility};
use chat_shared::codec::{FrameError, decode_client_frame};
use chat_shared::protocol::{
    Ack, ClientFrame, ErrorCode, ErrorFrame, Hello, PROTOCOL_VERSION, Pong, RefreshFrame,
    Refreshed, ResumeFrame, SendFrame, ServerFrame, close_code,
};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered, SplitStream};
use futures::{FutureExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::delivery::control_frame;
use crate::http::auth::{Caller, load_guilds};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::handle::{ConnHandle, Outbound, ResumeBegin};
use crate::ws::replay::replay;
use crate::ws::writer;

/// Sends of one connection waiting for the router at once; reading pauses beyond it.
const MAX_SENDS_IN_FLIGHT: usize = 64;
/// Rate-limited sends in a row that count as flooding (closed with 4008).
const FLOOD_STRIKES: u32 = 100;

/// The connection, run until either side ends it. The socket is split and the writer task
/// started before the returned future exists, so that future (kept by every open connection)
/// holds only the reader's state.
pub fn run(
    socket: WebSocket,
    state: AppState,
    caller: Caller,
    handle: ConnHandle,
    outbound: mpsc::Receiver<Outbound>,
) -> impl Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!("connection", id = handle.id(), user = %caller.user.id);
    state.metrics.connections.inc();
    state.metrics.connections_opened.inc();
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(
        writer::run(
            sink,
            outbound,
            handle.clone(),
            state.config.heartbeat(),
            state.metrics.clone(),
        )
        .instrument(span.clone()),
    );
    let reader = Reader::new(&state, caller, handle);
    reader.serve(stream, writer).instrument(span)
}

/// The `hello` of a connection; queued before the connection joins its guilds, so it is
/// always the first frame.
pub fn hello_frame(state: &AppState, caller: &Caller, handle: &ConnHandle) -> ServerFrame {
    ServerFrame::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        connection_id: format!("{:x}-{}", handle.id(), ulid::Ulid::new()),
        user: caller.user.clone(),
        guilds: caller.guilds.clone(),
        admin: caller.is_admin(),
        heartbeat_ms: state.config.heartbeat_ms,
        max_text_chars: state.config.limits.max_text_chars as usize,
    })
}

/// The `type` of a client frame, as the `ws.receive` span shows it.
fn frame_kind(decoded: &Result<ClientFrame, FrameError>) -> &'static str {
    match decoded {
        Ok(ClientFrame::Send(_)) => "send",
        Ok(ClientFrame::Resume(_)) => "resume",
        Ok(ClientFrame::Refresh(_)) => "refresh",
        Ok(ClientFrame::Ping(_)) => "ping",
        Ok(ClientFrame::Typing(_)) => "typing",
        Err(_) => "bad",
    }
}

struct Reader {
    state: AppState,
    caller: Caller,
    handle: ConnHandle,
    limiter: DefaultDirectRateLimiter,
    strikes: u32,
    /// Resolves when the previous send of this connection has been answered: sends are handed
    /// to the router one after another, so one client's messages keep their order whichever
    /// router takes each.
    last_send_done: Option<oneshot::Receiver<()>>,
    /// The writer was told to stop holding the live messages of the first moments.
    released_live: bool,
}

impl Reader {
    fn new(state: &AppState, caller: Caller, handle: ConnHandle) -> Self {
        let rate = NonZeroU32::new(state.config.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(state.config.send_burst).unwrap_or(NonZeroU32::MIN);
        Reader {
            state: state.clone(),
            caller,
            handle,
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            strikes: 0,
            last_send_done: None,
            released_live: false,
        }
    }

    /// Reads until the connection ends, then leaves the hub, waits for the writer's close
    /// frame and counts the close code.
    async fn serve(mut self, stream: SplitStream<WebSocket>, writer: JoinHandle<()>) {
        // Presence hook (issue #13): online in the session guilds while the socket is open.
        let presence = self.state.presence.clone();
        presence.join(&self.handle, &self.caller.user, &self.caller.guilds);
        self.read(stream).await;
        let Reader {
            state,
            caller,
            handle,
            ..
        } = self;
        state.hub.leave(&handle, &caller.guilds, true);
        presence.leave(&handle, &caller.guilds, false);
        handle.close(close_code::NORMAL, "");
        let _ = writer.await;
        let code = handle
            .close_reason()
            .map(|r| r.code)
            .unwrap_or(close_code::NORMAL);
        Metrics::count(&state.metrics.connections_closed, "code", &code.to_string());
        state.metrics.connections.dec();
    }

    async fn read(&mut self, mut stream: SplitStream<WebSocket>) {
        let mut sends: FuturesOrdered<BoxFuture<'static, ServerFrame>> = FuturesOrdered::new();
        let mut resumes: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
        loop {
            // The rare and larger steps are boxed so that what every idle connection keeps is
            // only this loop's state.
            tokio::select! {
                _ = self.handle.closed() => break,
                _ = self.handle.guilds_changed() => Box::pin(self.reload_guilds()).await,
                Some(answer) = sends.next(), if !sends.is_empty() => {
                    Box::pin(self.reply(answer)).await;
                }
                Some(()) = resumes.next(), if !resumes.is_empty() => {}
                incoming = stream.next(), if sends.len() < MAX_SENDS_IN_FLIGHT => {
                    let Some(incoming) = incoming else { break };
                    self.handle.touch();
                    let bytes = match incoming {
                        Ok(Message::Text(text)) => text.as_bytes().to_vec(),
                        Ok(Message::Binary(bytes)) => bytes.to_vec(),
                        Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                        Ok(Message::Close(_)) => break,
                        Err(error) => {
                            self.on_socket_error(error);
                            break;
                        }
                    };
                    Box::pin(self.on_frame(&bytes, &mut sends, &mut resumes)).await;
                }
            }
        }
    }

    /// Decodes and answers one client frame; a send's answer joins `sends`, a resume's
    /// replays join `resumes`.
    async fn on_frame(
        &mut self,
        bytes: &[u8],
        sends: &mut FuturesOrdered<BoxFuture<'static, ServerFrame>>,
        resumes: &mut FuturesUnordered<BoxFuture<'static, ()>>,
    ) {
        let first_frame = !self.released_live;
        let decoded = decode_client_frame(bytes, self.handle.encoding());
        let span = chat_shared::export_span!("ws.receive", frame = frame_kind(&decoded));
        self.answer(decoded, sends, resumes).instrument(span).await;
        if first_frame {
            self.released_live = true;
            self.handle.send(Outbound::ReleaseLive).await;
        }
    }

    async fn answer(
        &mut self,
        decoded: Result<ClientFrame, FrameError>,
        sends: &mut FuturesOrdered<BoxFuture<'static, ServerFrame>>,
        resumes: &mut FuturesUnordered<BoxFuture<'static, ()>>,
    ) {
        match decoded {
            Ok(ClientFrame::Send(frame)) => {
                Metrics::count(&self.state.metrics.frames_in, "type", "send");
                if let Some(pending) = self.on_send(frame).await {
                    sends.push_back(pending);
                }
            }
            Ok(ClientFrame::Resume(frame)) => {
                Metrics::count(&self.state.metrics.frames_in, "type", "resume");
                resumes.extend(self.on_resume(frame).await);
            }
            Ok(ClientFrame::Refresh(frame)) => {
                Metrics::count(&self.state.metrics.frames_in, "type", "refresh");
                self.on_refresh(frame).await;
            }
            Ok(ClientFrame::Ping(frame)) => {
                Metrics::count(&self.state.metrics.frames_in, "type", "ping");
                self.reply(ServerFrame::Pong(Pong {
                    reference: frame.reference,
                }))
                .await;
            }
            // Presence hook (issue #13): the logic is in `crate::presence`.
            Ok(ClientFrame::Typing(frame)) => {
                Metrics::count(&self.state.metrics.frames_in, "type", "typing");
                let presence = &self.state.presence;
                if let Some(refusal) =
                    presence.typing(&self.caller.user, &self.caller.guilds, frame)
                {
                    // Refusals are rate limited like sends.
                    let answer = match self.limiter.check() {
                        Ok(_) => refusal,
                        Err(_) => ErrorFrame::new(ErrorCode::RateLimited, None),
                    };
                    self.reply(ServerFrame::Error(answer)).await;
                }
            }
            Err(error) => {
                Metrics::count(&self.state.metrics.frames_in, "type", "bad");
                tracing::debug!(%error, "bad frame");
                self.reply(ServerFrame::Error(ErrorFrame::new(
                    ErrorCode::BadFrame,
                    error.reference,
                )))
                .await;
            }
        }
    }

    async fn reply(&self, frame: ServerFrame) {
        if let ServerFrame::Ack(_) | ServerFrame::Error(_) = &frame {
            let outcome = match &frame {
                ServerFrame::Error(e) => e.code.as_str(),
                _ => "ack",
            };
            Metrics::count(&self.state.metrics.sends, "outcome", outcome);
        }
        let message = control_frame(&frame, self.handle.encoding());
        self.handle.send(Outbound::frame(message)).await;
    }

    /// Closes with the code that names the peer's mistake; a lost socket needs no code.
    fn on_socket_error(&self, error: axum::Error) {
        let error = error.into_inner();
        let (code, reason) = match error.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => (close_code::FRAME_TOO_BIG, "frame too big"),
            Some(tungstenite::Error::Utf8(_)) => (close_code::INVALID_DATA, "text is not UTF-8"),
            Some(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => return,
            Some(tungstenite::Error::Protocol(_)) => (close_code::PROTOCOL_ERROR, "protocol error"),
            _ => return,
        };
        tracing::debug!(%error, code, "closing on a socket error");
        self.handle.close(code, reason);
    }

    /// Takes a fresh token for the same user and role, pushing back the 4001 close.
    async fn on_refresh(&mut self, frame: RefreshFrame) {
        let accepted =
            self.state.verifier.verify(&frame.token).ok().filter(|t| {
                t.user.id == self.caller.user.id && t.user.role == self.caller.user.role
            });
        let answer = match accepted {
            Some(token) => {
                self.handle.set_token_exp(token.exp);
                self.caller.exp = token.exp;
                ServerFrame::Refreshed(Refreshed {
                    reference: frame.reference,
                    exp: token.exp,
                })
            }
            None => ServerFrame::Error(ErrorFrame::new(ErrorCode::NotAuthorized, frame.reference)),
        };
        self.reply(answer).await;
    }

    /// Rate limit, membership, then the router; `None` when answered at once.
    async fn on_send(&mut self, frame: SendFrame) -> Option<BoxFuture<'static, ServerFrame>> {
        let reference = frame.reference.clone();
        if self.limiter.check().is_err() {
            self.strikes += 1;
            if self.strikes >= FLOOD_STRIKES {
                self.handle.close(close_code::POLICY_VIOLATION, "flooding");
            }
            self.reply(ServerFrame::Error(ErrorFrame::new(
                ErrorCode::RateLimited,
                reference,
            )))
            .await;
            return None;
        }
        self.strikes = 0;
        let request = self.send_request(frame);
        let bus = self.state.bus.clone();
        let span = tracing::info_span!("send", guild = request.guild_id.as_deref().unwrap_or(""));
        let (done, this_done) = oneshot::channel::<()>();
        let previous = self.last_send_done.replace(this_done);
        Some(
            async move {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                let outcome = bus.submit(request).await;
                let _ = done.send(());
                match outcome {
                    Ok(Ok(ack)) => ServerFrame::Ack(Ack {
                        reference,
                        message_id: ack.message_id,
                        seq: ack.seq,
                    }),
                    Ok(Err(code)) => ServerFrame::Error(ErrorFrame::new(code, reference)),
                    Err(error) => {
                        tracing::warn!(%error, "send failed on the bus");
                        ServerFrame::Error(ErrorFrame::new(ErrorCode::ServerError, reference))
                    }
                }
            }
            .instrument(span)
            .boxed(),
        )
    }

    fn send_request(&self, frame: SendFrame) -> SendRequest {
        let member_verified = frame
            .guild_id
            .as_deref()
            .is_some_and(|g| self.caller.guilds.iter().any(|mine| mine == g));
        SendRequest {
            v: INTERNAL_VERSION,
            sender: self.caller.user.clone(),
            guild_id: frame.guild_id,
            text: frame.text,
            admin_only: frame.admin_only.unwrap_or(false),
            request_bot: frame.request_bot.unwrap_or(false),
            message_id: frame.message_id,
            member_verified,
        }
    }

    /// Starts a replay for each guild the caller may read; refuses the others.
    async fn on_resume(&mut self, frame: ResumeFrame) -> Vec<BoxFuture<'static, ()>> {
        let mut replays = Vec::new();
        for (guild, after) in frame.positions {
            if !self.caller.may_read(&guild) {
                let refusal = ErrorFrame {
                    guild_id: Some(guild),
                    ..ErrorFrame::new(ErrorCode::ForbiddenGuild, None)
                };
                self.reply(ServerFrame::Error(refusal)).await;
                continue;
            }
            let guild: Arc<str> = Arc::from(guild);
            if !self
                .handle
                .send(Outbound::ResumeBegin(Box::new(ResumeBegin {
                    guild: guild.clone(),
                    after,
                })))
                .await
            {
                break;
            }
            let visibility = Visibility::for_admin(self.caller.is_admin());
            replays.push(
                replay(
                    self.state.clone(),
                    self.handle.clone(),
                    guild,
                    after,
                    visibility,
                )
                .boxed(),
            );
        }
        replays
    }

    /// Re-reads the guild list after a membership change and follows it in the hub.
    async fn reload_guilds(&mut self) {
        let Ok(fresh) = load_guilds(&self.state, &self.caller.user.id).await else {
            return;
        };
        let gone: Vec<String> = self
            .caller
            .guilds
            .iter()
            .filter(|g| !fresh.contains(g))
            .cloned()
            .collect();
        let added: Vec<String> = fresh
            .iter()
            .filter(|g| !self.caller.guilds.contains(g))
            .cloned()
            .collect();
        self.state.hub.leave(&self.handle, &gone, false);
        if let Err(error) = self.state.hub.join(&self.handle, &added).await {
            tracing::warn!(%error, "could not follow new guilds");
        }
        // Presence hook (issue #13): a removed membership is gone at once, no linger.
        let presence = &self.state.presence;
        presence.leave(&self.handle, &gone, true);
        presence.join(&self.handle, &self.caller.user, &added);
        if fresh.is_empty() && !self.caller.is_admin() {
            self.handle
                .close(close_code::SESSION_REVOKED, "no guilds left");
        }
        self.caller.guilds = fresh;
    }
}
