//! One Socket.IO socket on an Engine.IO session: the CONNECT handshake (origin, token from the
//! cookie or `auth.token`, guilds, dependencies, admission — refusals as CONNECT_ERROR with the
//! `/ws` error code), connection state recovery, `chat:message` sends with their acks, and
//! the end of the socket (client disconnect, drain, revocation, flooding, token expiry).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use chat_shared::auth::{EXP_LEEWAY_SECS, unix_now};
use chat_shared::protocol::{ErrorCode, close_code};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::admission::{NodeSlot, UserSlot};
use crate::http::auth::{Caller, load_guilds};
use crate::socketio::SocketIo;
use crate::socketio::bridge::{self, Link};
use crate::socketio::engine::Session;
use crate::socketio::events::{
    CHAT_MESSAGE, CHAT_TYPING, ack_error, ack_ok, ack_typing, read_send, read_typing,
};
use crate::socketio::packet::{
    DEFAULT_NAMESPACE, SioPacket, decode_sio, encode_ack, encode_connect, encode_connect_error,
    encode_disconnect,
};
use crate::socketio::recovery::decode_offset;

/// Rate-limited sends in a row that count as flooding (closed like `/ws` with 4008).
const FLOOD_STRIKES: u32 = 100;
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

/// A connected socket: its place in the hub and what it holds of admission.
struct Connected {
    link: Link,
    caller: Caller,
    limiter: DefaultDirectRateLimiter,
    strikes: u32,
    _slots: (NodeSlot, Option<UserSlot>),
}

struct Socket {
    io: Arc<SocketIo>,
    session: Arc<Session>,
    handshake: Handshake,
    connected: Option<Connected>,
}

/// Runs the socket of `session` until either side ends it.
pub async fn run(
    io: Arc<SocketIo>,
    session: Arc<Session>,
    mut inbound: mpsc::Receiver<String>,
    handshake: Handshake,
) {
    let mut socket = Socket {
        io,
        session: session.clone(),
        handshake,
        connected: None,
    };
    let connect_deadline = tokio::time::sleep(CONNECT_TIMEOUT);
    tokio::pin!(connect_deadline);
    loop {
        tokio::select! {
            _ = session.closed() => break,
            _ = &mut connect_deadline, if socket.connected.is_none() => break,
            code = close_requested(&socket.connected) => {
                socket.on_close_request(code).await;
                break;
            }
            payload = inbound.recv() => match payload {
                Some(payload) => socket.on_payload(&payload).await,
                None => break,
            },
        }
    }
    if let Some(connected) = socket.connected.take() {
        if session.is_too_slow() {
            connected.link.too_slow();
        }
        connected.link.end();
    }
    session.close();
}

/// The core's close request of a connected socket, or its token's expiry.
async fn close_requested(connected: &Option<Connected>) -> u16 {
    let Some(connected) = connected else {
        return std::future::pending().await;
    };
    let expires = connected
        .caller
        .exp
        .saturating_add(EXP_LEEWAY_SECS)
        .saturating_sub(unix_now());
    tokio::select! {
        code = connected.link.close_requested() => code,
        _ = tokio::time::sleep(Duration::from_secs(expires)) => close_code::SESSION_REVOKED,
    }
}

impl Socket {
    async fn on_payload(&mut self, payload: &str) {
        let packet = match decode_sio(payload) {
            Ok(packet) => packet,
            Err(error) => {
                tracing::debug!(%error, "bad socket.io packet");
                self.io.metrics.ignored("malformed");
                return;
            }
        };
        match packet {
            SioPacket::Connect { namespace, .. } if namespace != DEFAULT_NAMESPACE => {
                self.io.metrics.ignored("namespace");
                let refusal = encode_connect_error(&namespace, "Invalid namespace");
                self.session.send(format!("4{refusal}")).await;
            }
            SioPacket::Connect { .. } if self.connected.is_some() => {
                self.io.metrics.ignored("connected_twice");
            }
            SioPacket::Connect { auth, .. } => {
                let auth = auth.unwrap_or(Value::Null);
                if let Err(code) = self.connect(&auth).await {
                    let refusal = encode_connect_error(DEFAULT_NAMESPACE, code.as_str());
                    crate::metrics::Metrics::count(
                        &self.io.state.metrics.handshake_refusals,
                        "reason",
                        code.as_str(),
                    );
                    self.session.send(format!("4{refusal}")).await;
                }
            }
            SioPacket::Disconnect { .. } => self.session.close(),
            SioPacket::Event { .. } if self.connected.is_none() => {
                self.io.metrics.ignored("not_connected");
            }
            SioPacket::Event {
                name, args, ack, ..
            } => self.on_event(&name, &args, ack).await,
            SioPacket::Ack { .. } => self.io.metrics.ignored("unexpected_ack"),
        }
    }

    /// The CONNECT checks in `/ws` order, then the hub, then recovery; answers CONNECT.
    async fn connect(&mut self, auth: &Value) -> Result<(), ErrorCode> {
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
        let mut link = bridge::open(&state, &caller).await?;
        let (pid, recovered) = self.recover(&link, &caller, auth).await;
        let socket_id = ulid::Ulid::new().to_string();
        self.session
            .send(format!("4{}", encode_connect(&socket_id, &pid)))
            .await;
        match recovered {
            Some(recovered) => {
                self.io.metrics.recoveries(true);
                link.start(
                    self.session.clone(),
                    recovered.positions,
                    recovered.entries,
                    recovered.covered,
                );
            }
            None => {
                let heads = link.heads().await;
                link.start(self.session.clone(), heads, Vec::new(), Default::default());
            }
        }
        let rate = NonZeroU32::new(state.config.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(state.config.send_burst).unwrap_or(NonZeroU32::MIN);
        self.connected = Some(Connected {
            link,
            caller,
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            strikes: 0,
            _slots: (node_slot, user_slot),
        });
        Ok(())
    }

    /// The pid to answer and the missed entries: the client's pid again when it recovers.
    async fn recover(
        &self,
        link: &Link,
        caller: &Caller,
        auth: &Value,
    ) -> (String, Option<bridge::Recovered>) {
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

    async fn on_event(&mut self, name: &str, args: &[Value], ack: Option<u64>) {
        let answer = if name == CHAT_MESSAGE {
            self.io.metrics.event_in(CHAT_MESSAGE);
            self.on_chat_message(args).await
        } else if name == CHAT_TYPING {
            self.io.metrics.event_in(CHAT_TYPING);
            self.on_typing(args)
        } else {
            self.io.metrics.ignored("unknown_event");
            ack_error(ErrorCode::BadFrame)
        };
        if let Some(id) = ack {
            self.session
                .send(format!("4{}", encode_ack(id, &answer)))
                .await;
        }
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

    /// Rate limit, then the router; the ack's value.
    async fn on_chat_message(&mut self, args: &[Value]) -> Value {
        let Some(connected) = self.connected.as_mut() else {
            return ack_error(ErrorCode::ServerError);
        };
        let outcome = match read_send(args) {
            Err(code) => Err(code),
            Ok(_) if connected.limiter.check().is_err() => {
                connected.strikes += 1;
                if connected.strikes >= FLOOD_STRIKES {
                    connected
                        .link
                        .close(close_code::POLICY_VIOLATION, "flooding");
                }
                Err(ErrorCode::RateLimited)
            }
            Ok(frame) => {
                connected.strikes = 0;
                connected.link.submit(frame).await
            }
        };
        let metrics = &self.io.state.metrics;
        match outcome {
            Ok((message_id, seq)) => {
                crate::metrics::Metrics::count(&metrics.sends, "outcome", "ack");
                ack_ok(&message_id, seq)
            }
            Err(code) => {
                crate::metrics::Metrics::count(&metrics.sends, "outcome", code.as_str());
                ack_error(code)
            }
        }
    }

    /// A close asked by the gateway: revoked sockets are told not to come back (a Socket.IO
    /// DISCONNECT); the others (drain, too slow, flooding) lose their transport and reconnect.
    async fn on_close_request(&mut self, code: u16) {
        tracing::debug!(code, "socket.io socket closed by the gateway");
        if code == close_code::SESSION_REVOKED {
            self.session.send(format!("4{}", encode_disconnect())).await;
        }
        self.session.close();
    }
}
