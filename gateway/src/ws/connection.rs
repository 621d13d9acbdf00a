//! One connection's life, in one task: `hello`, then reading client frames (send, resume,
//! refresh, ping, typing) and writing what the outbound queue and the connection's own
//! replies bring ([`crate::ws::writer`]), with the heartbeat. The resumes named in the handshake begin
//! before the connection joins its guilds, so their replays come before any live message;
//! every other guild is live at once. Sends are handed to the router one after another in the
//! order they arrived (many waiting for their answers at once) and answered in that order; a
//! bad frame is answered with `bad_frame` and the connection stays open.

use std::num::NonZeroU32;
use std::sync::Arc;

use chat_shared::protocol::codec::{FrameError, decode_client_frame};
use chat_shared::protocol::{
    ClientFrame, ErrorCode, ErrorFrame, Hello, PROTOCOL_VERSION, Pong, ResumeFrame, ServerFrame,
    close_code,
};
use governor::{DefaultDirectRateLimiter, Quota};
use tracing::Instrument;

use crate::http::auth::Caller;
use crate::in_flight::SendOrder;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, Outbox, ResumeBegin};
use crate::state::AppState;
use crate::websocket::WebSocket;
use crate::ws::handle::{ConnHandle, Outgoing};
use crate::ws::resumes::Resumes;
use crate::ws::writer::{Pace, Writer};
use sending::Sends;

mod running;
mod sending;
mod session;

/// What a connection opens with: its outbox, where the resumes named in the handshake have
/// begun, and those resumes (readable guilds) and refusals (the others) for the reader.
pub struct Opening {
    outbox: Outbox,
    positions: Vec<(String, u64)>,
}

/// Prepares a connection: call before it joins the hub, so the named guilds' live messages
/// wait for their replays.
pub fn open(
    state: &AppState,
    caller: &Caller,
    handle: &ConnHandle,
    positions: Vec<(String, u64)>,
) -> Opening {
    let mut outbox = Outbox::new(
        handle.clone(),
        caller.guilds.iter().map(String::as_str),
        state.bus.clone(),
        state.metrics.clone(),
    );
    for (guild, after) in &positions {
        if caller.may_read(guild) {
            outbox.apply(
                Outbound::ResumeBegin(Box::new(ResumeBegin {
                    guild: Arc::from(guild.as_str()),
                    after: *after,
                })),
                &mut Vec::new(),
            );
        }
    }
    Opening { outbox, positions }
}

/// The connection, run until either side ends it: one task reads the socket, writes what
/// the queue and its own replies bring, and keeps the heartbeat (one task instead of a reader
/// and a writer: less memory per idle connection, no split socket; see docs/benchmarks.md).
pub fn run(
    socket: WebSocket,
    state: AppState,
    caller: Caller,
    handle: ConnHandle,
    outbound: Outgoing,
    opening: Opening,
) -> impl Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!("connection", id = handle.id(), user = %caller.user.id);
    state.metrics.connections.inc();
    state.metrics.connections_opened.inc();
    let pace = Pace {
        heartbeat: state.config.heartbeat(),
        write_timeout: state.config.outbound.write_timeout(),
    };
    let mut writer = Writer::new(
        socket,
        opening.outbox,
        handle.clone(),
        pace,
        state.metrics.clone(),
    );
    let mut reader = Reader::new(&state, caller, handle);
    reader.named = opening.positions;
    let mut queue = outbound;
    // The parts live once, in this block, and `serve` borrows them: an `async fn` taking them
    // by value would keep each twice in the task (as its argument and as the local it is moved
    // into), ~0.9 KiB more per idle connection.
    async move {
        (reader.serve(&mut writer, &mut queue)).await;
    }
    .instrument(span)
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
    /// The send rate limiter, made on the first send (an idle connection keeps a pointer).
    limiter: Option<Box<DefaultDirectRateLimiter>>,
    strikes: u32,
    /// Sends are handed to the router one after another, so one client's messages keep
    /// their order (their answers may still be on the way).
    send_order: SendOrder,
    resumes: Resumes,
    /// What this connection sends itself (replies, resume starts, membership changes), written
    /// right after the step that made it, ahead of the queue (never waiting for its room).
    own: Vec<Outbound>,
    /// The resumes named in the handshake, until they start.
    named: Vec<(String, u64)>,
}

impl Reader {
    fn new(state: &AppState, caller: Caller, handle: ConnHandle) -> Self {
        Reader {
            state: state.clone(),
            caller,
            handle,
            limiter: None,
            strikes: 0,
            send_order: SendOrder::default(),
            resumes: Resumes::default(),
            own: Vec::new(),
            named: Vec::new(),
        }
    }

    /// The connection's send rate limiter (`SEND_RATE_PER_SEC`, `SEND_BURST`).
    fn limiter(&mut self) -> &DefaultDirectRateLimiter {
        let config = &self.state.config;
        self.limiter.get_or_insert_with(|| {
            let rate = NonZeroU32::new(config.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(config.send_burst).unwrap_or(NonZeroU32::MIN);
            Box::new(crate::rate::limiter(
                Quota::per_second(rate).allow_burst(burst),
            ))
        })
    }

    /// Starts the handshake's resumes, runs the connection until it ends, then leaves the
    /// hub, sends the close frame and counts the close code.
    async fn serve(&mut self, writer: &mut Writer, queue: &mut Outgoing) {
        // Presence (issue #13): online in the session guilds while the socket is open.
        let presence = self.state.presence.clone();
        presence.join(&self.handle, &self.caller.user, &self.caller.guilds);
        if !self.named.is_empty() {
            let named = std::mem::take(&mut self.named);
            Box::pin(self.start_resumes(named, false)).await;
        }
        let failed = self.run_loop(writer, queue).await;
        let Reader {
            state,
            caller,
            handle,
            ..
        } = self;
        state.hub.leave(handle, &caller.guilds, true);
        presence.leave(handle, &caller.guilds, false);
        if failed {
            handle.close(close_code::NORMAL, "socket closed");
        } else {
            handle.close(close_code::NORMAL, "");
            Box::pin(writer.send_close()).await;
        }
        let code = handle
            .close_reason()
            .map(|r| r.code)
            .unwrap_or(close_code::NORMAL);
        Metrics::count(&state.metrics.connections_closed, "code", &code.to_string());
        state.metrics.connections.dec();
    }

    /// Decodes and answers one client frame; a send's answer joins `sends`.
    async fn on_frame(&mut self, bytes: &[u8], sends: &mut Sends) {
        let decoded = decode_client_frame(bytes, self.handle.encoding());
        let span = chat_shared::export_span!("ws.receive", frame = frame_kind(&decoded));
        self.answer(decoded, sends).instrument(span).await;
    }

    async fn answer(&mut self, decoded: Result<ClientFrame, FrameError>, sends: &mut Sends) {
        let frames_in = &self.state.metrics.frames_in;
        match decoded {
            Ok(ClientFrame::Send(frame)) => {
                Metrics::count(frames_in, "type", "send");
                if let Some(pending) = self.on_send(frame).await {
                    sends.push(pending);
                }
            }
            Ok(ClientFrame::Resume(frame)) => {
                Metrics::count(frames_in, "type", "resume");
                self.on_resume(frame).await;
            }
            Ok(ClientFrame::Refresh(frame)) => {
                Metrics::count(frames_in, "type", "refresh");
                self.on_refresh(frame).await;
            }
            Ok(ClientFrame::Ping(frame)) => {
                Metrics::count(frames_in, "type", "ping");
                let pong = Pong {
                    reference: frame.reference,
                };
                self.reply(ServerFrame::Pong(pong));
            }
            // Presence hook (issue #13): the logic is in `crate::presence`.
            Ok(ClientFrame::Typing(frame)) => {
                Metrics::count(&self.state.metrics.frames_in, "type", "typing");
                let presence = &self.state.presence;
                if let Some(refusal) =
                    presence.typing(&self.caller.user, &self.caller.guilds, frame)
                {
                    // Refusals are rate limited like sends.
                    let answer = match self.limiter().check() {
                        Ok(_) => refusal,
                        Err(_) => ErrorFrame::new(ErrorCode::RateLimited, None),
                    };
                    self.reply(ServerFrame::Error(answer));
                }
            }
            Err(error) => {
                Metrics::count(frames_in, "type", "bad");
                tracing::debug!(%error, "bad frame");
                let refusal = ErrorFrame::new(ErrorCode::BadFrame, error.reference);
                self.reply(ServerFrame::Error(refusal));
            }
        }
    }

    fn reply(&mut self, frame: ServerFrame) {
        self.own.push(Outbound::frame(frame));
    }

    /// A `resume` frame: within its rate, each guild's replay begins (ordered by the
    /// sequencer) or is refused.
    async fn on_resume(&mut self, frame: ResumeFrame) {
        let per_minute = self.state.config.outbound.resume_frames_per_min;
        let budget = crate::user_budget::Budget::Resume;
        if !self.resumes.frame_allowed(per_minute)
            || crate::user_budget::spend(&self.state, budget, &self.caller.user.id)
                .await
                .is_err()
        {
            let refusal = ErrorFrame::new(ErrorCode::RateLimited, None);
            return self.reply(ServerFrame::Error(refusal));
        }
        self.start_resumes(frame.positions.into_iter().collect(), true)
            .await;
    }

    /// Starts a replay for each guild the caller may read (telling the sequencer first when
    /// `begin`, i.e. it was not told at the handshake); refuses the others.
    async fn start_resumes(&mut self, positions: Vec<(String, u64)>, begin: bool) {
        for (guild, after) in positions {
            let code = if self.caller.may_read(&guild) {
                let guild: Arc<str> = Arc::from(guild);
                match self.resumes.admit(&self.state, &guild) {
                    Ok(()) => {
                        let start = ResumeBegin {
                            guild: guild.clone(),
                            after,
                        };
                        if begin {
                            self.own.push(Outbound::ResumeBegin(Box::new(start)));
                        }
                        self.resumes.push(&self.state, &self.handle, guild, after);
                        continue;
                    }
                    Err(code) => (code, guild.to_string()),
                }
            } else {
                (ErrorCode::ForbiddenGuild, guild)
            };
            let refusal = ErrorFrame {
                guild_id: Some(code.1),
                ..ErrorFrame::new(code.0, None)
            };
            self.reply(ServerFrame::Error(refusal));
        }
    }
}
