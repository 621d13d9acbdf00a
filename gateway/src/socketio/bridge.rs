//! The adapter between Socket.IO sockets and the gateway's connection core — the only file of
//! `socketio/` that uses the core (`ConnHandle`, the outbound queue and its `Outbox`, the hub,
//! the send path). It creates a connection handle and joins the hub, reads the guild logs for a
//! recovery, turns what the hub queues for the connection into `chat:message` emits (each with
//! the offset as its last argument) and presence/typing events, submits sends and typing, and
//! reports close requests (drain, revocation, too slow). Nothing here runs a task of its own:
//! the socket's loop (`session.rs`) pops the queue ([`Flow`]) and writes what it turns into.

use std::time::{Duration, SystemTime};

use chat_shared::bus::{LogEntry, Visibility};
use chat_shared::protocol::codec::Encoding;
use chat_shared::protocol::presence::TypingFrame;
use chat_shared::protocol::{ErrorCode, SendFrame, ServerFrame};

use crate::http::auth::Caller;
use crate::in_flight::SendOrder;
use crate::outbound::{Outbound, Outbox, Write};
use crate::send::{SendFields, hand_over};
use crate::socketio::events::{
    CHAT_MESSAGE, bot_unavailable_payload, message_head, message_tail, presence_event,
};
use crate::socketio::packet::encode_event;
use crate::socketio::recovery::{Positions, encode_offset, within_window};
use crate::socketio::server_packet::ServerPacket;
use crate::state::AppState;
use crate::wire_entry::WireEntry;
use crate::ws::handle::{ConnHandle, Outgoing, QueueBounds, Wake};

/// Entries read per guild for a recovery; more missed than this is not recovered.
const RECOVERY_LIMIT: usize = 1000;

/// Queue items turned into packets before one write.
const BATCH: usize = 64;

/// One Socket.IO socket registered in the hub.
pub struct Link {
    state: AppState,
    handle: ConnHandle,
    caller: Caller,
    /// Sends are handed to the router one after another, so one client's messages keep
    /// their order (their answers may still be on the way).
    send_order: SendOrder,
}

/// Registers a socket for `caller` in the hub (its guilds, and admin-only traffic for admins),
/// with the reading end of its queue. From here on, nothing posted to those guilds is missed.
pub async fn open(state: &AppState, caller: Caller) -> Result<(Link, Outgoing), ErrorCode> {
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
    let link = Link {
        state: state.clone(),
        handle,
        caller,
        send_order: SendOrder::default(),
    };
    Ok((link, outbound))
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
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

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
        for (guild, after) in offset.iter() {
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
            positions.set(guild, last);
            covered.set(guild, last);
            entries.extend(page.entries);
        }
        within_window(oldest, SystemTime::now(), window).then_some(Recovered {
            entries,
            positions,
            covered,
        })
    }

    /// Starts emitting: `replay` (already read) goes into `out` now, then [`Flow`] turns what
    /// the hub queues into packets, each `chat:message` carrying the offset after it. Live
    /// entries at or before a guild's seq in `covered` are in the replay and not emitted again.
    pub fn start(
        &self,
        queue: Outgoing,
        positions: Positions,
        replay: Vec<LogEntry>,
        covered: Positions,
        out: &mut Vec<ServerPacket>,
    ) -> Flow {
        let outbox = Outbox::new(
            self.handle.clone(),
            self.caller.guilds.iter().map(String::as_str),
            self.state.bus.clone(),
            self.state.metrics.clone(),
        );
        let mut pump = Pump {
            outbox,
            handle: self.handle.clone(),
            admin: self.caller.is_admin(),
            skip_upto: Positions::new(),
            positions,
            writes: Vec::new(),
        };
        for entry in replay {
            pump.emit_message(&WireEntry::new(entry), out);
        }
        for (guild, seq) in covered.iter() {
            pump.skip_upto.raise(guild, seq);
        }
        // Online in its guilds while the socket is connected; the snapshots follow the CONNECT
        // answer (they go through the same queue).
        self.state
            .presence
            .join(&self.handle, &self.caller.user, &self.caller.guilds);
        Flow { queue, pump }
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
    /// across every path first), after the socket's previous send has been handed over; the
    /// future owns what it needs, so the socket's loop keeps reading and writing while it
    /// waits for the answer.
    pub fn submit(
        &mut self,
        frame: SendFrame,
    ) -> impl Future<Output = Result<(String, u64), ErrorCode>> + Send + 'static {
        let (state, caller) = (self.state.clone(), self.caller.clone());
        let mut turn = self.send_order.turn();
        async move {
            turn.begin().await;
            let request_bot = frame.request_bot == Some(true);
            if crate::send_limit::check(&state, &caller.user.id, request_bot)
                .await
                .is_err()
            {
                return Err(ErrorCode::RateLimited);
            }
            let answer = hand_over(&state, &caller, SendFields::from_frame(frame, None)).await;
            drop(turn);
            answer.await.map(|ack| (ack.message_id, ack.seq))
        }
    }

    /// Follows a change of the caller's guilds (hub, presence, the 4001 close when none is
    /// left: [`crate::membership`]); `flow`'s sequencer learns of it before its next item.
    pub async fn follow_guilds(&mut self, flow: &mut Flow, out: &mut Vec<ServerPacket>) {
        let changes = crate::membership::follow(&self.state, &mut self.caller, &self.handle).await;
        for change in changes {
            flow.pump
                .apply_own(Outbound::Membership(Box::new(change)), out);
        }
    }

    /// When the caller's token expires (seconds since the Unix epoch).
    pub fn token_exp(&self) -> u64 {
        self.handle.token_exp()
    }

    /// Resolves with the close code once the core asks this socket to close (drain 1012,
    /// revoked 4001, flooding 4008, too slow 4009, …).
    pub async fn close_requested(&self) -> u16 {
        self.handle.closed().await;
        self.close_code()
    }

    /// The code the core asked this socket to close with (1000 when none yet).
    pub fn close_code(&self) -> u16 {
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

    /// Leaves the hub (and presence, when `started`).
    pub fn end(self, started: bool) {
        self.state
            .hub
            .leave(&self.handle, &self.caller.guilds, true);
        if started {
            self.state
                .presence
                .leave(&self.handle, &self.caller.guilds, false);
        }
        self.handle.close(1000, "");
        self.state.metrics.connections.dec();
        let code = self.handle.close_reason().map_or(1000, |r| r.code);
        crate::metrics::Metrics::count(
            &self.state.metrics.connections_closed,
            "code",
            &code.to_string(),
        );
    }
}

/// A started socket's queue and what turns its items into packets.
pub struct Flow {
    queue: Outgoing,
    pump: Pump,
}

/// What a started socket's queue has next.
pub enum Next {
    Item(Outbound),
    /// The session store changed the user's guilds: see [`Link::follow_guilds`].
    GuildsChanged,
}

impl Flow {
    /// The next queue item or guild change, waiting for one (`None` once the socket is asked
    /// to close).
    pub async fn next(&mut self) -> Option<Next> {
        match self.queue.next().await {
            Wake::Item(item) => Some(Next::Item(item)),
            Wake::GuildsChanged => Some(Next::GuildsChanged),
            Wake::Closed => None,
        }
    }

    /// Turns `first` and whatever else is queued (up to [`BATCH`]) into packets in `out`.
    pub fn batch(&mut self, first: Outbound, out: &mut Vec<ServerPacket>) {
        let mut item = Some(first);
        let mut count = 0;
        while let Some(next) = item.take() {
            self.pump.apply(next, out);
            count += 1;
            if count < BATCH {
                item = self.queue.try_recv();
            }
        }
    }

    /// Gives back the scratch space of a drained queue; true when it was drained.
    pub fn idle(&mut self) -> bool {
        if !self.queue.is_empty() {
            return false;
        }
        self.pump.outbox.idle();
        self.pump.writes = Vec::new();
        self.queue.shrink_if_empty();
        true
    }
}

/// Turns a connection's outbound queue items into Socket.IO packets.
struct Pump {
    outbox: Outbox,
    handle: ConnHandle,
    admin: bool,
    positions: Positions,
    skip_upto: Positions,
    writes: Vec<Write>,
}

impl Pump {
    /// An item taken from the queue: its bytes are given back to the queue's bound.
    fn apply(&mut self, item: Outbound, out: &mut Vec<ServerPacket>) {
        self.handle.release(item.cost());
        self.apply_own(item, out);
    }

    /// An item of the socket's own (never queued).
    fn apply_own(&mut self, item: Outbound, out: &mut Vec<ServerPacket>) {
        let mut writes = std::mem::take(&mut self.writes);
        self.outbox.apply(item, &mut writes);
        for write in writes.drain(..) {
            match write {
                Write::Message { entry, .. } => self.emit_message(&entry, out),
                Write::Frame(frame) => emit_notice(&frame, out),
                Write::Shared(frame) => emit_notice(frame.frame(), out),
            }
        }
        self.writes = writes;
    }

    /// Emits a live or replayed message unless already sent.
    /// The packet's head is the entry's, shared; its tail is this socket's offset.
    fn emit_message(&mut self, entry: &WireEntry, out: &mut Vec<ServerPacket>) {
        let (message, seq) = (&entry.message, entry.seq);
        if message.admin_only && !self.admin {
            return;
        }
        let guild = message.guild_id.as_str();
        if self.skip_upto.get(guild).is_some_and(|upto| seq <= upto) {
            return;
        }
        self.skip_upto.set(guild, seq);
        self.positions.set(guild, seq);
        let tail = message_tail(&encode_offset(&self.positions));
        out.push(ServerPacket::joined(
            entry.socketio_head(message_head),
            tail,
        ));
    }
}

/// A frame for this connection only: presence and typing become their events, the bot's
/// `bot_unavailable` notice the original system's bot message with `error`; other frames have
/// no Socket.IO form here.
fn emit_notice(frame: &ServerFrame, out: &mut Vec<ServerPacket>) {
    if let Some((name, payload)) = presence_event(frame) {
        let packet = encode_event(name, &[&payload]);
        return out.push(format!("4{packet}").into());
    }
    let ServerFrame::Error(frame) = frame else {
        return;
    };
    if frame.code != ErrorCode::BotUnavailable {
        return;
    }
    let packet = encode_event(CHAT_MESSAGE, &[&bot_unavailable_payload(frame, false)]);
    out.push(format!("4{packet}").into());
}

/// The instant of a contract `ts`.
fn parse_ts(ts: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(ts, &Rfc3339).ok()?;
    let nanos = u64::try_from(at.unix_timestamp_nanos()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}
