//! The adapter between Socket.IO sessions and the gateway's connection core — the only file of
//! `socketio/` that uses the core (`ConnHandle`, the outbound queue and its `Outbox`, the hub, the send path). It
//! creates a connection handle and joins the hub, reads the guild logs for a recovery, turns
//! what the hub queues for the connection into `chat:message` emits (each with the offset as
//! its last argument) and presence/typing events, submits sends and typing, and reports close
//! requests (drain, revocation, too slow).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chat_shared::bus::{LogEntry, Visibility};
use chat_shared::protocol::codec::Encoding;
use chat_shared::protocol::presence::TypingFrame;
use chat_shared::protocol::{ChatMessage, ErrorCode, SendFrame, ServerFrame};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::http::auth::Caller;
use crate::outbound::{Outbox, Write};
use crate::send::{SendFields, send};
use crate::socketio::engine::Session;
use crate::socketio::events::{
    CHAT_MESSAGE, bot_unavailable_payload, message_payload, presence_event,
};
use crate::socketio::packet::encode_event;
use crate::socketio::recovery::{Positions, encode_offset, within_window};
use crate::state::AppState;
use crate::ws::handle::{ConnHandle, Outgoing, QueueBounds};

/// Entries read per guild for a recovery; more missed than this is not recovered.
const RECOVERY_LIMIT: usize = 1000;

/// One Socket.IO socket registered in the hub.
pub struct Link {
    state: AppState,
    handle: ConnHandle,
    caller: Caller,
    outbound: Option<Outgoing>,
    pump: Option<JoinHandle<()>>,
}

/// Registers a socket for `caller` in the hub (its guilds, and admin-only traffic for admins).
/// From here on, nothing posted to those guilds is missed.
pub async fn open(state: &AppState, caller: &Caller) -> Result<Link, ErrorCode> {
    let (handle, outbound) = ConnHandle::new(
        state.next_connection_id(),
        &caller.user.id,
        caller.is_admin(),
        Encoding::Json,
        QueueBounds {
            items: state.config.outbound_queue as usize,
            bytes: usize::try_from(state.config.outbound.outbound_queue_bytes)
                .unwrap_or(usize::MAX),
        },
        caller.exp,
    );
    if let Err(error) = state.hub.join(&handle, &caller.guilds).await {
        tracing::warn!(%error, "could not subscribe for a new socket.io connection");
        state.hub.leave(&handle, &caller.guilds, true);
        return Err(ErrorCode::Unavailable);
    }
    state.metrics.connections.inc();
    state.metrics.connections_opened.inc();
    Ok(Link {
        state: state.clone(),
        handle,
        caller: caller.clone(),
        outbound: Some(outbound),
        pump: None,
    })
}

/// What a recovery read found: the missed entries in log order per guild, the positions after
/// them (the heads of guilds the offset did not name), and, for the guilds it read, the last
/// seq the replay covers (live entries up to it are already in the replay).
pub struct Recovered {
    pub entries: Vec<LogEntry>,
    pub positions: Positions,
    pub covered: Positions,
}

impl Link {
    pub fn visibility(&self) -> Visibility {
        Visibility::for_admin(self.caller.is_admin())
    }

    /// The newest visible seq of each of the caller's guilds (0 when empty or unreadable): the
    /// positions of a socket that recovers nothing.
    pub async fn heads(&self) -> Positions {
        let reads = self.caller.guilds.iter().map(|guild| async move {
            let head = self
                .state
                .bus
                .read_before(guild, None, 1, self.visibility())
                .await
                .ok()
                .and_then(|(entries, _)| entries.first().map(|e| e.seq))
                .unwrap_or(0);
            (guild.clone(), head)
        });
        futures::future::join_all(reads).await.into_iter().collect()
    }

    /// The entries missed since `offset` in the guilds the caller may still read, when all of
    /// them are retained, at most [`RECOVERY_LIMIT`] per guild, and none is older than `window`.
    pub async fn recover(&self, offset: &Positions, window: Duration) -> Option<Recovered> {
        let mut positions = self.heads().await;
        let mut entries = Vec::new();
        let mut covered = Positions::new();
        let mut oldest: Option<SystemTime> = None;
        for (guild, &after) in offset {
            if !self.caller.may_read(guild) {
                continue;
            }
            let page = self
                .state
                .bus
                .read_after(guild, after, RECOVERY_LIMIT, self.visibility())
                .await
                .ok()?;
            if page.gap || page.more {
                return None;
            }
            let last = page.entries.last().map_or(after, |e| e.seq);
            if let Some(first) = page.entries.first() {
                let at = parse_ts(&first.message.ts)?;
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
            positions.insert(guild.clone(), last);
            covered.insert(guild.clone(), last);
            entries.extend(page.entries);
        }
        within_window(oldest, SystemTime::now(), window).then_some(Recovered {
            entries,
            positions,
            covered,
        })
    }

    /// Starts emitting: first `replay` (already read), then what the hub queues, each
    /// `chat:message` carrying the offset after it. Live entries at or before a guild's seq in
    /// `covered` are in the replay and not emitted again.
    pub fn start(
        &mut self,
        session: Arc<Session>,
        positions: Positions,
        replay: Vec<LogEntry>,
        covered: Positions,
    ) {
        let Some(outbound) = self.outbound.take() else {
            return;
        };
        let outbox = Outbox::new(
            self.handle.clone(),
            self.caller.guilds.iter().map(String::as_str),
            self.state.bus.clone(),
            self.state.metrics.clone(),
        );
        let pump = Pump {
            session,
            outbox,
            handle: self.handle.clone(),
            admin: self.caller.is_admin(),
            skip_upto: Positions::new(),
            positions,
        };
        let span = tracing::info_span!("socketio.pump", id = self.handle.id());
        let run = pump.run(outbound, replay, covered);
        self.pump = Some(tokio::spawn(run.instrument(span)));
        // Online in its guilds while the socket is connected; the snapshots follow the CONNECT
        // answer (they go through the same queue).
        self.state
            .presence
            .join(&self.handle, &self.caller.user, &self.caller.guilds);
    }

    /// A client's `chat:typing`: forwarded to the guild's other members (throttled like `/ws`),
    /// or the code of the refusal (missing guild, not a member).
    pub fn typing(&self, frame: TypingFrame) -> Option<ErrorCode> {
        self.state
            .presence
            .typing(&self.caller.user, &self.caller.guilds, frame)
            .map(|refusal| refusal.code)
    }

    /// Hands a send to the router through the gateway's one send path (the per-user limit
    /// across every path first) and waits for its answer.
    pub async fn submit(&self, frame: SendFrame) -> Result<(String, u64), ErrorCode> {
        let request_bot = frame.request_bot == Some(true);
        if crate::send_limit::check(&self.state, &self.caller.user.id, request_bot)
            .await
            .is_err()
        {
            return Err(ErrorCode::RateLimited);
        }
        send(
            &self.state,
            &self.caller,
            SendFields::from_frame(frame, None),
        )
        .await
        .map(|ack| (ack.message_id, ack.seq))
    }

    /// Resolves with the close code once the core asks this socket to close (drain 1012,
    /// revoked 4001, flooding 4008, too slow 4009, …).
    pub async fn close_requested(&self) -> u16 {
        self.handle.closed().await;
        self.handle.close_reason().map_or(1000, |r| r.code)
    }

    /// Asks the socket to close with `code` (the first reason wins).
    pub fn close(&self, code: u16, reason: &'static str) {
        self.handle.close(code, reason);
    }

    /// The client took no bytes for the write timeout: closed as too slow (4009), counted
    /// like `/ws`'s slow consumers.
    pub fn too_slow(&self) {
        if self
            .handle
            .close_first(chat_shared::protocol::close_code::TOO_SLOW, "write timeout")
        {
            self.state.metrics.slow_closes.inc();
        }
    }

    /// Leaves the hub and stops emitting.
    pub fn end(self) {
        self.state
            .hub
            .leave(&self.handle, &self.caller.guilds, true);
        if self.pump.is_some() {
            self.state
                .presence
                .leave(&self.handle, &self.caller.guilds, false);
        }
        self.handle.close(1000, "");
        if let Some(pump) = &self.pump {
            pump.abort();
        }
        self.state.metrics.connections.dec();
        let code = self.handle.close_reason().map_or(1000, |r| r.code);
        crate::metrics::Metrics::count(
            &self.state.metrics.connections_closed,
            "code",
            &code.to_string(),
        );
    }
}

/// Turns a connection's outbound queue into Socket.IO packets on its Engine.IO session.
struct Pump {
    session: Arc<Session>,
    outbox: Outbox,
    handle: ConnHandle,
    admin: bool,
    positions: Positions,
    skip_upto: Positions,
}

impl Pump {
    async fn run(mut self, mut outbound: Outgoing, replay: Vec<LogEntry>, covered: Positions) {
        for entry in replay {
            if !self.emit_message(&entry.message, entry.seq).await {
                return;
            }
        }
        for (guild, seq) in covered {
            let upto = self.skip_upto.entry(guild).or_default();
            *upto = (*upto).max(seq);
        }
        loop {
            let item = tokio::select! {
                _ = self.handle.closed() => return,
                item = outbound.recv() => match item {
                    Some(item) => item,
                    None => return,
                },
            };
            self.handle.release(item.cost());
            let mut writes = Vec::new();
            self.outbox.apply(item, &mut writes);
            let mut written = true;
            for write in writes {
                written = match write {
                    Write::Message { entry, .. } => {
                        self.emit_message(&entry.message, entry.seq).await
                    }
                    Write::Frame(frame) => self.emit_notice(&frame).await,
                    Write::Shared(frame) => self.emit_notice(frame.frame()).await,
                };
                if !written {
                    break;
                }
            }
            if !written {
                return;
            }
        }
    }

    /// Emits a live or replayed message unless already sent; false once the session is gone.
    async fn emit_message(&mut self, message: &ChatMessage, seq: u64) -> bool {
        if message.admin_only && !self.admin {
            return true;
        }
        let guild = message.guild_id.as_str();
        if self.skip_upto.get(guild).is_some_and(|&upto| seq <= upto) {
            return true;
        }
        self.skip_upto.insert(guild.to_owned(), seq);
        self.positions.insert(guild.to_owned(), seq);
        let offset = serde_json::Value::String(encode_offset(&self.positions));
        let packet = encode_event(CHAT_MESSAGE, &[&message_payload(message, seq), &offset]);
        self.session.send(format!("4{packet}")).await
    }

    /// A frame for this connection only: presence and typing become their events, the bot's
    /// `bot_unavailable` notice the original system's bot message with `error`; other frames
    /// have no Socket.IO form here.
    async fn emit_notice(&mut self, frame: &ServerFrame) -> bool {
        if let Some((name, payload)) = presence_event(frame) {
            let packet = encode_event(name, &[&payload]);
            return self.session.send(format!("4{packet}")).await;
        }
        let ServerFrame::Error(frame) = frame else {
            return true;
        };
        if frame.code != ErrorCode::BotUnavailable {
            return true;
        }
        let packet = encode_event(CHAT_MESSAGE, &[&bot_unavailable_payload(frame, false)]);
        self.session.send(format!("4{packet}")).await
    }
}

/// The instant of a contract `ts`.
fn parse_ts(ts: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(ts, &Rfc3339).ok()?;
    let nanos = u64::try_from(at.unix_timestamp_nanos()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}
