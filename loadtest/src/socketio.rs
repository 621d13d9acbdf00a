//! `--protocol socketio`: the same clients and load over Socket.IO v5 on Engine.IO v4's
//! WebSocket transport (our `/socket.io/` endpoint, or the Node reference server in
//! `loadtest/node-reference/`). The connection is translated at the message level so every
//! scenario runs unchanged: a `/ws` `send` frame becomes `42N["chat:message",{…}]` with ack id
//! N, a `chat:message` event becomes a `message` frame, an ack becomes `ack` or `error` with the
//! send's `ref`, and Engine.IO pings are answered with pongs inside the stream.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use chat_shared::protocol::Hello;
use chat_shared::protocol::identity::{Role, UserInfo};
use clap::ValueEnum;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::connect::ConnectFailure;
use crate::users::{ClientAuth, VirtualUser};

/// The wire protocol of the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Protocol {
    /// The gateway's own `/ws` frames.
    #[default]
    Ws,
    /// Socket.IO v5 over Engine.IO v4 WebSocket (target `ws://host:port/socket.io/`).
    Socketio,
}

/// A client connection of either protocol, as one `Stream + Sink` of `/ws` messages.
pub enum ClientStream {
    Ws(WebSocketStream<TcpStream>),
    Sio(SioStream),
}

/// A Socket.IO connection that reads and writes as `/ws` frames.
pub struct SioStream {
    inner: WebSocketStream<TcpStream>,
    /// Ack id → the `ref` of the `/ws` send it stands for.
    acks: HashMap<u64, Option<String>>,
    next_ack: u64,
    pending_pongs: usize,
    needs_flush: bool,
}

/// The Engine.IO URL of a Socket.IO target (`ws://h:p/socket.io/`).
pub fn engine_url(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}EIO=4&transport=websocket")
}

/// After the WebSocket upgrade: the Engine.IO `open`, our CONNECT (with `auth.token`), and its
/// answer; a CONNECT_ERROR is a failure with its message.
pub async fn handshake(
    mut inner: WebSocketStream<TcpStream>,
    user: &VirtualUser,
) -> Result<(ClientStream, Hello), ConnectFailure> {
    let open = next_text(&mut inner).await?;
    let open: Value = open
        .strip_prefix('0')
        .and_then(|body| serde_json::from_str(body).ok())
        .ok_or_else(|| ConnectFailure::UnexpectedFrame(format!("engine.io open: {open:.40}")))?;
    let auth = match &user.auth {
        ClientAuth::Bearer(token) => json!({ "token": token }),
        ClientAuth::Open => json!({ "guilds": user.guilds }),
    };
    inner
        .send(Message::Text(format!("40{auth}").into()))
        .await?;
    let sid = loop {
        let text = next_text(&mut inner).await?;
        if text == "2" {
            inner.send(Message::Text("3".into())).await?;
        } else if let Some(body) = text.strip_prefix("40") {
            let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            break answer["sid"].as_str().unwrap_or_default().to_owned();
        } else if let Some(body) = text.strip_prefix("44") {
            let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let code = answer["message"].as_str().map(str::to_owned);
            return Err(ConnectFailure::Http { status: 0, code });
        } else {
            return Err(ConnectFailure::UnexpectedFrame(format!("{text:.40}")));
        }
    };
    let hello = Hello {
        protocol: 1,
        connection_id: sid,
        user: UserInfo::new(user.id.clone(), user.id.clone(), Role::Member),
        guilds: user.guilds.clone(),
        admin: false,
        heartbeat_ms: open["pingInterval"].as_u64().unwrap_or(25_000),
        max_text_chars: 2000,
    };
    let stream = SioStream {
        inner,
        acks: HashMap::new(),
        next_ack: 0,
        pending_pongs: 0,
        needs_flush: false,
    };
    Ok((ClientStream::Sio(stream), hello))
}

async fn next_text(inner: &mut WebSocketStream<TcpStream>) -> Result<String, ConnectFailure> {
    loop {
        match inner.next().await {
            None => return Err(ConnectFailure::ClosedBeforeHello(None)),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                return Err(ConnectFailure::ClosedBeforeHello(
                    frame.map(|f| f.code.into()),
                ));
            }
            Some(Ok(_)) => {}
        }
    }
}

/// What one server text packet means to a `/ws` reader.
#[derive(Debug, PartialEq, Eq)]
enum Translated {
    Frame(String),
    Ping,
    Skip,
    Closed,
}

/// A server packet as a `/ws` frame (JSON text).
fn translate(text: &str, acks: &mut HashMap<u64, Option<String>>) -> Translated {
    match text.as_bytes().first() {
        Some(b'2') if text.len() == 1 => return Translated::Ping,
        Some(b'1') => return Translated::Closed,
        Some(b'4') => {}
        _ => return Translated::Skip,
    }
    let packet = &text[1..];
    match packet.as_bytes().first() {
        Some(b'2') => event(&packet[1..]),
        Some(b'3') => ack(&packet[1..], acks),
        Some(b'1' | b'4') => Translated::Closed,
        _ => Translated::Skip,
    }
}

/// `["chat:message", {…, seq}, offset?]` → `{"type":"message","seq",…,"message":{…}}`.
fn event(body: &str) -> Translated {
    let start = body.find('[').unwrap_or(body.len());
    let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(&body[start..]) else {
        return Translated::Skip;
    };
    if args.first().and_then(Value::as_str) != Some("chat:message") || args.len() < 2 {
        return Translated::Skip;
    }
    let mut message = args.swap_remove(1);
    let seq = message
        .as_object_mut()
        .and_then(|m| m.remove("seq"))
        .unwrap_or(Value::Null);
    Translated::Frame(json!({ "type": "message", "seq": seq, "message": message }).to_string())
}

/// `N[{ok,messageId,seq}]` → `ack`; `N[{error,code}]` → `error`, each with the send's `ref`.
fn ack(body: &str, acks: &mut HashMap<u64, Option<String>>) -> Translated {
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let (Ok(id), Ok(Value::Array(args))) = (
        body[..digits].parse::<u64>(),
        serde_json::from_str::<Value>(&body[digits..]),
    ) else {
        return Translated::Skip;
    };
    let reference = acks.remove(&id).flatten();
    let answer = args.into_iter().next().unwrap_or(Value::Null);
    let frame = if answer["ok"] == Value::Bool(true) {
        json!({ "type": "ack", "ref": reference, "messageId": answer["messageId"], "seq": answer["seq"] })
    } else {
        let code = answer["code"].as_str().unwrap_or("server_error");
        let text = answer["error"].as_str().unwrap_or(code);
        json!({ "type": "error", "ref": reference, "code": code, "message": text })
    };
    Translated::Frame(frame.to_string())
}

/// A `/ws` client frame as a Socket.IO packet: only `send` has one (others are dropped).
fn client_packet(text: &str, acks: &mut HashMap<u64, Option<String>>, id: u64) -> Option<String> {
    let frame: Value = serde_json::from_str(text).ok()?;
    if frame["type"] != "send" {
        return None;
    }
    let mut payload = json!({ "guildId": frame["guildId"], "text": frame["text"] });
    for field in ["messageId", "adminOnly", "requestBot"] {
        if !frame[field].is_null() {
            payload[field] = frame[field].clone();
        }
    }
    acks.insert(id, frame["ref"].as_str().map(str::to_owned));
    Some(format!("42{id}{}", json!(["chat:message", payload])))
}

impl SioStream {
    /// Writes the pongs owed for pings read so far, as far as the socket takes them.
    fn flush_pongs(&mut self, cx: &mut Context<'_>) {
        while self.pending_pongs > 0 {
            match Pin::new(&mut self.inner).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                _ => return,
            }
            if Pin::new(&mut self.inner)
                .start_send(Message::Text("3".into()))
                .is_err()
            {
                self.pending_pongs = 0;
                return;
            }
            self.pending_pongs -= 1;
            self.needs_flush = true;
        }
        if self.needs_flush && Pin::new(&mut self.inner).poll_flush(cx).is_ready() {
            self.needs_flush = false;
        }
    }
}

impl Stream for SioStream {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            this.flush_pongs(cx);
            let text = match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(Message::Text(text))) => text,
                other => return Poll::Ready(other),
            };
            match translate(text.as_str(), &mut this.acks) {
                Translated::Frame(frame) => {
                    return Poll::Ready(Some(Ok(Message::Text(frame.into()))));
                }
                Translated::Ping => this.pending_pongs += 1,
                Translated::Skip => {}
                Translated::Closed => return Poll::Ready(Some(Ok(Message::Close(None)))),
            }
        }
    }
}

impl Sink<Message> for SioStream {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        this.flush_pongs(cx);
        Pin::new(&mut this.inner).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        let this = self.get_mut();
        let Message::Text(text) = item else {
            return Pin::new(&mut this.inner).start_send(item);
        };
        let id = this.next_ack;
        match client_packet(text.as_str(), &mut this.acks, id) {
            Some(packet) => {
                this.next_ack += 1;
                Pin::new(&mut this.inner).start_send(Message::Text(packet.into()))
            }
            None => Ok(()),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl Stream for ClientStream {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            ClientStream::Ws(s) => Pin::new(s).poll_next(cx),
            ClientStream::Sio(s) => Pin::new(s).poll_next(cx),
        }
    }
}

impl Sink<Message> for ClientStream {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            ClientStream::Ws(s) => Pin::new(s).poll_ready(cx),
            ClientStream::Sio(s) => Pin::new(s).poll_ready(cx),
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        match self.get_mut() {
            ClientStream::Ws(s) => Pin::new(s).start_send(item),
            ClientStream::Sio(s) => Pin::new(s).start_send(item),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            ClientStream::Ws(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Sio(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.get_mut() {
            ClientStream::Ws(s) => Pin::new(s).poll_close(cx),
            ClientStream::Sio(s) => Pin::new(s).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::protocol::ServerFrame;
    use chat_shared::protocol::codec::{Encoding, decode_server_frame};

    fn frame(t: Translated) -> ServerFrame {
        let Translated::Frame(text) = t else {
            panic!("not a frame: {t:?}")
        };
        decode_server_frame(text.as_bytes(), Encoding::Json).expect("a /ws frame")
    }

    #[test]
    fn sends_and_acks_round_trip_with_their_ref() {
        let mut acks = HashMap::new();
        let send = r#"{"type":"send","ref":"r1","guildId":"g1","text":"hi","messageId":"m1"}"#;
        let packet = client_packet(send, &mut acks, 7).expect("a packet");
        assert_eq!(
            packet,
            r#"427["chat:message",{"guildId":"g1","messageId":"m1","text":"hi"}]"#
        );
        assert_eq!(client_packet(r#"{"type":"ping"}"#, &mut acks, 8), None);
        match frame(translate(
            r#"437[{"ok":true,"messageId":"m1","seq":4}]"#,
            &mut acks,
        )) {
            ServerFrame::Ack(a) => assert_eq!((a.reference.as_deref(), a.seq), (Some("r1"), 4)),
            other => panic!("{other:?}"),
        }
        client_packet(send, &mut acks, 9);
        match frame(translate(
            r#"439[{"error":"rate_limited","code":"rate_limited"}]"#,
            &mut acks,
        )) {
            ServerFrame::Error(e) => assert_eq!(e.reference.as_deref(), Some("r1")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_become_message_frames_and_control_packets_are_handled() {
        let mut acks = HashMap::new();
        let event = r##"42["chat:message",{"guildId":"g1","messageId":"m1","adminOnly":false,"from":{"id":"u1","name":"Ann","role":"member","color":"#3b82f6"},"text":"hi","ts":"2026-01-01T00:00:00.000Z","seq":3},"{\"g1\":3}"]"##;
        match frame(translate(event, &mut acks)) {
            ServerFrame::Message(m) => assert_eq!((m.seq, m.message.text.as_str()), (3, "hi")),
            other => panic!("{other:?}"),
        }
        let table = [
            ("2", Translated::Ping),
            ("3", Translated::Skip),
            ("1", Translated::Closed),
            ("41", Translated::Closed),
            (r#"44{"message":"x"}"#, Translated::Closed),
            (r#"40{"sid":"s"}"#, Translated::Skip),
            (r#"42["presence",{}]"#, Translated::Skip),
            ("42[", Translated::Skip),
            ("43x", Translated::Skip),
            ("", Translated::Skip),
        ];
        for (text, expected) in table {
            assert_eq!(translate(text, &mut acks), expected, "{text}");
        }
        assert_eq!(
            engine_url("ws://h:1/socket.io/"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket"
        );
    }
}
