//! One Socket.IO socket's protocol, transport-neutral: the CONNECT handshake (origin, token
//! from the cookie or `auth.token`, guilds, dependencies, admission — refusals as
//! CONNECT_ERROR with the `/ws` error code), connection state recovery, `chat:message` sends
//! with their acks, `chat:typing`, and the end of the socket (client disconnect, drain,
//! revocation, flooding, token expiry). Each step writes what to send into the caller's
//! buffer and tells the socket's loop (`session.rs`) what comes next ([`Step`]).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chat_shared::auth::{EXP_LEEWAY_SECS, unix_now};
use chat_shared::protocol::{ErrorCode, close_code};
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota};
use serde_json::Value;

use crate::admission::{NodeSlot, UserSlot};
use crate::http::auth::{Caller, load_guilds};
use crate::socketio::SocketIo;
use crate::socketio::bridge::{self, Flow, Link};
use crate::socketio::events::{
    CHAT_MESSAGE, CHAT_TYPING, ack_error, ack_ok, ack_typing, read_send, read_typing,
};
use crate::socketio::packet::{
    DEFAULT_NAMESPACE, ENGINE_PING, SioPacket, decode_sio, encode_ack, encode_connect,
    encode_connect_error, encode_disconnect,
};
use crate::socketio::recovery::decode_offset;
use crate::socketio::server_packet::ServerPacket;
use crate::socketio::session::Handshake;
use crate::socketio::timers::Wake;

/// Rate-limited sends in a row that count as flooding (closed like `/ws` with 4008).
const FLOOD_STRIKES: u32 = 100;

/// A send waiting for the router; resolves to its ack packet, if the client asked for one.
pub type Sending = BoxFuture<'static, Option<String>>;

/// What one step of the socket asks its loop to do next.
pub enum Step {
    Go,
    /// CONNECT succeeded: the hub's queue flows from now on.
    Started(Flow),
    /// A send went to the router: its ack comes when it is answered.
    Send(Sending),
    End,
}

/// A connected socket: its place in the hub and what it holds of admission.
struct Connected {
    link: Link,
    limiter: DefaultDirectRateLimiter,
    strikes: u32,
    _slots: (NodeSlot, Option<UserSlot>),
}

/// One socket, from its Engine.IO session's start.
pub struct Socket {
    io: Arc<SocketIo>,
    handshake: Handshake,
    connected: Option<Connected>,
}

impl Socket {
    pub fn new(io: Arc<SocketIo>, handshake: Handshake) -> Self {
        Socket {
            io,
            handshake,
            connected: None,
        }
    }

    /// One Socket.IO payload from the client; what to send goes into `out`.
    pub async fn on_payload(&mut self, payload: &str, out: &mut Vec<ServerPacket>) -> Step {
        let packet = match decode_sio(payload) {
            Ok(packet) => packet,
            Err(error) => {
                tracing::debug!(%error, "bad socket.io packet");
                self.io.metrics.ignored("malformed");
                return Step::Go;
            }
        };
        match packet {
            SioPacket::Connect { namespace, .. } if namespace != DEFAULT_NAMESPACE => {
                self.io.metrics.ignored("namespace");
                let refusal = encode_connect_error(&namespace, "Invalid namespace");
                out.push(format!("4{refusal}").into());
            }
            SioPacket::Connect { .. } if self.connected.is_some() => {
                self.io.metrics.ignored("connected_twice");
            }
            SioPacket::Connect { auth, .. } => {
                let auth = auth.unwrap_or(Value::Null);
                match self.connect(&auth, out).await {
                    Ok(flow) => return Step::Started(flow),
                    Err(code) => {
                        let refusal = encode_connect_error(DEFAULT_NAMESPACE, code.as_str());
                        crate::metrics::Metrics::count(
                            &self.io.state.metrics.handshake_refusals,
                            "reason",
                            code.as_str(),
                        );
                        out.push(format!("4{refusal}").into());
                    }
                }
            }
            SioPacket::Disconnect { .. } => return Step::End,
            SioPacket::Event { .. } if self.connected.is_none() => {
                self.io.metrics.ignored("not_connected");
            }
            SioPacket::Event {
                name, args, ack, ..
            } => return self.on_event(&name, &args, ack, out),
            SioPacket::Ack { .. } => self.io.metrics.ignored("unexpected_ack"),
        }
        Step::Go
    }

    /// The CONNECT checks in `/ws` order, then the hub, then recovery; answers CONNECT (and
    /// the replay of a recovery) into `out`.
    async fn connect(
        &mut self,
        auth: &Value,
        out: &mut Vec<ServerPacket>,
    ) -> Result<Flow, ErrorCode> {
        let state = self.io.state.clone();
        let node_slot = state.admission.admit_to_node().map_err(|r| r.code)?;
        let _handshake = state.admission.begin_handshake().map_err(|r| r.code)?;
        if !self.handshake.origin_ok {
            return Err(ErrorCode::OriginNotAllowed);
        }
        let token = self
            .handshake
            .header_token
            .as_deref()
            .or_else(|| auth.get("token").and_then(Value::as_str))
            .ok_or(ErrorCode::NotAuthorized)?;
        let token = state
            .verifier
            .verify(token)
            .map_err(|_| ErrorCode::NotAuthorized)?;
        // The user's handshake budget, as on `/ws` (issue #14; `user_budget.rs`).
        crate::user_budget::spend(
            &state,
            crate::user_budget::Budget::Handshake,
            &token.user.id,
        )
        .await
        .map_err(|_| ErrorCode::RateLimited)?;
        let guilds = load_guilds(&state, &token.user.id)
            .await
            .map_err(|e| e.code)?;
        let caller = Caller {
            user: token.user,
            guilds,
            exp: token.exp,
        };
        if !caller.is_admin() && caller.guilds.is_empty() {
            return Err(ErrorCode::NoGuildContext);
        }
        if !state.health.dependencies_ok() {
            return Err(ErrorCode::Unavailable);
        }
        let user_slot = state
            .admission
            .admit_user(&caller.user.id)
            .await
            .map_err(|r| r.code)?;
        let (link, queue) = bridge::open(&state, caller).await?;
        let (pid, recovered) = self.recover(&link, auth).await;
        let socket_id = ulid::Ulid::new().to_string();
        out.push(format!("4{}", encode_connect(&socket_id, &pid)).into());
        let flow = match recovered {
            Some(recovered) => {
                self.io.metrics.recoveries(true);
                let bridge::Recovered {
                    entries,
                    positions,
                    covered,
                } = recovered;
                link.start(queue, positions, entries, covered, out)
            }
            None => {
                let heads = link.heads().await;
                link.start(queue, heads, Vec::new(), Default::default(), out)
            }
        };
        let rate = NonZeroU32::new(state.config.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(state.config.send_burst).unwrap_or(NonZeroU32::MIN);
        self.connected = Some(Connected {
            link,
            limiter: crate::rate::limiter(Quota::per_second(rate).allow_burst(burst)),
            strikes: 0,
            _slots: (node_slot, user_slot),
        });
        // The token was needed for the CONNECT only.
        self.handshake.header_token = None;
        Ok(flow)
    }

    /// The pid to answer and the missed entries: the client's pid again when it recovers.
    async fn recover(&self, link: &Link, auth: &Value) -> (String, Option<bridge::Recovered>) {
        let caller = link.caller();
        let fresh = || self.io.pid_key.issue(&caller.user.id);
        let pid = auth.get("pid").and_then(Value::as_str);
        let Some(pid) = pid.filter(|p| self.io.pid_key.verify(p, &caller.user.id)) else {
            if pid.is_some() {
                self.io.metrics.recoveries(false);
            }
            return (fresh(), None);
        };
        let offset = auth.get("offset").and_then(Value::as_str);
        let positions = match offset {
            Some(offset) => decode_offset(offset),
            // A client that received nothing yet has no offset: nothing to replay.
            None => Some(Default::default()),
        };
        let recovered = match positions {
            Some(positions) => link.recover(&positions, self.io.recovery_window).await,
            None => None,
        };
        match recovered {
            Some(recovered) => (pid.to_owned(), Some(recovered)),
            None => {
                self.io.metrics.recoveries(false);
                (fresh(), None)
            }
        }
    }

    fn on_event(
        &mut self,
        name: &str,
        args: &[Value],
        ack: Option<u64>,
        out: &mut Vec<ServerPacket>,
    ) -> Step {
        let answer = if name == CHAT_MESSAGE {
            self.io.metrics.event_in(CHAT_MESSAGE);
            match self.on_chat_message(args) {
                Ok(sending) => return Step::Send(acked(sending, ack)),
                Err(answer) => answer,
            }
        } else if name == CHAT_TYPING {
            self.io.metrics.event_in(CHAT_TYPING);
            self.on_typing(args)
        } else {
            self.io.metrics.ignored("unknown_event");
            ack_error(ErrorCode::BadFrame)
        };
        if let Some(id) = ack {
            out.push(format!("4{}", encode_ack(id, &answer)).into());
        }
        Step::Go
    }

    /// Forwarded to the guild's other members (throttled silently, as on `/ws`); a refusal
    /// (missing guild, `forbidden_guild`) is the ack's value, rate limited like sends.
    fn on_typing(&mut self, args: &[Value]) -> Value {
        let Some(connected) = self.connected.as_mut() else {
            return ack_error(ErrorCode::ServerError);
        };
        let refusal = match read_typing(args) {
            Ok(frame) => connected.link.typing(frame),
            Err(code) => Some(code),
        };
        match refusal {
            None => ack_typing(),
            Some(_) if connected.limiter.check().is_err() => ack_error(ErrorCode::RateLimited),
            Some(code) => {
                self.io.metrics.ignored("typing_refused");
                ack_error(code)
            }
        }
    }

    /// Rate limit, then the router: the send on its way (its ack's value when it is
    /// answered), or the ack's value at once.
    fn on_chat_message(&mut self, args: &[Value]) -> Result<BoxFuture<'static, Value>, Value> {
        let metrics = self.io.state.metrics.clone();
        let Some(connected) = self.connected.as_mut() else {
            return Err(ack_error(ErrorCode::ServerError));
        };
        let refusal = match read_send(args) {
            Err(code) => code,
            Ok(_) if connected.limiter.check().is_err() => {
                connected.strikes += 1;
                if connected.strikes >= FLOOD_STRIKES {
                    connected
                        .link
                        .close(close_code::POLICY_VIOLATION, "flooding");
                }
                ErrorCode::RateLimited
            }
            Ok(frame) => {
                connected.strikes = 0;
                let submitted = connected.link.submit(frame);
                return Ok(Box::pin(async move { ack_value(submitted.await) }));
            }
        };
        // Refused here, before the send path (which counts what it answers).
        let _ = crate::send::answered(&metrics, Err(refusal));
        Err(ack_value(Err(refusal)))
    }

    /// A close asked by the gateway: revoked sockets are told not to come back (a Socket.IO
    /// DISCONNECT); the others (drain, too slow, flooding) lose their transport and reconnect.
    pub fn on_close_request(&mut self, code: u16, out: &mut Vec<ServerPacket>) -> Step {
        tracing::debug!(code, "socket.io socket closed by the gateway");
        if code == close_code::SESSION_REVOKED {
            out.push(format!("4{}", encode_disconnect()).into());
        }
        Step::End
    }

    /// The user's guilds changed: the socket follows them (see [`Link::follow_guilds`]).
    pub async fn follow_guilds(&mut self, flow: &mut Flow, out: &mut Vec<ServerPacket>) {
        if let Some(connected) = self.connected.as_mut() {
            connected.link.follow_guilds(flow, out).await;
        }
    }

    /// What the loop's timer found due.
    pub fn on_wake(&mut self, wake: Wake, out: &mut Vec<ServerPacket>) -> Step {
        match wake {
            Wake::Nothing => Step::Go,
            Wake::Ping => {
                out.push(ENGINE_PING.into());
                Step::Go
            }
            Wake::Silent | Wake::ConnectTimeout => {
                tracing::debug!(?wake, "socket.io session timed out");
                Step::End
            }
            Wake::TokenExpired => {
                if let Some(connected) = &self.connected {
                    connected
                        .link
                        .close(close_code::SESSION_REVOKED, "token expired");
                }
                self.on_close_request(close_code::SESSION_REVOKED, out)
            }
        }
    }

    /// The core's close request of a connected socket (pending before it connects).
    pub async fn close_requested(&self) -> u16 {
        match &self.connected {
            Some(connected) => connected.link.close_requested().await,
            None => std::future::pending().await,
        }
    }

    /// The code the core asked the connected socket to close with (1000 when none).
    pub fn close_code(&self) -> u16 {
        self.connected
            .as_ref()
            .map_or(1000, |c| c.link.close_code())
    }

    /// How long the connected socket's token is still good (with the leeway).
    pub fn token_left(&self) -> Duration {
        let exp = self.connected.as_ref().map_or(0, |c| c.link.token_exp());
        let left = exp
            .saturating_add(EXP_LEEWAY_SECS)
            .saturating_sub(unix_now());
        Duration::from_secs(left)
    }

    /// Ends the socket: leaves the hub (counted as too slow when the transport gave up).
    pub fn end(&mut self, too_slow: bool, started: bool) {
        if let Some(connected) = self.connected.take() {
            if too_slow {
                connected.link.too_slow();
            }
            connected.link.end(started);
        }
    }
}

/// A send's outcome as the ack's value.
fn ack_value(outcome: Result<(String, u64), ErrorCode>) -> Value {
    match outcome {
        Ok((message_id, seq)) => ack_ok(&message_id, seq),
        Err(code) => ack_error(code),
    }
}

/// The ack packet a send's answer becomes, when the client asked for one.
fn acked(sending: BoxFuture<'static, Value>, ack: Option<u64>) -> Sending {
    Box::pin(async move {
        let answer = sending.await;
        ack.map(|id| format!("4{}", encode_ack(id, &answer)))
    })
}
