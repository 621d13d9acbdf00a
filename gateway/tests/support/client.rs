//! A real WebSocket client for tests (tokio-tungstenite), speaking the contract in JSON or
//! MessagePack. Frames that arrive while the test waits for something else are kept, in
//! order, for the next read.

use std::collections::VecDeque;
use std::time::Duration;

use chat_shared::protocol::codec::{Encoding, decode_server_frame};
use chat_shared::protocol::{Ack, ErrorFrame, Hello, SequencedMessage, ServerFrame};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// A refused handshake: HTTP status and the `error` code of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub error: String,
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    encoding: Encoding,
    pub hello: Hello,
    stash: VecDeque<ServerFrame>,
    /// Presence frames (issue #13), kept apart so the other tests never see them.
    presence: VecDeque<ServerFrame>,
    next_ref: u64,
}

/// How to open a connection.
#[derive(Debug, Clone, Default)]
pub struct Connect<'a> {
    pub token: Option<&'a str>,
    pub cookie: bool,
    pub origin: Option<&'a str>,
    pub msgpack: bool,
    /// The handshake's `resume` query value (`g1:42,g2:17`).
    pub resume: Option<&'a str>,
}

impl Client {
    /// Opens `/ws` on `base` (http://host:port) and reads `hello`.
    pub async fn open(base: &str, how: Connect<'_>) -> Result<Client, Refusal> {
        let encoding = if how.msgpack {
            Encoding::MsgPack
        } else {
            Encoding::Json
        };
        let mut query: Vec<String> = Vec::new();
        if how.msgpack {
            query.push("encoding=msgpack".into());
        }
        if let Some(resume) = how.resume {
            query.push(format!("resume={resume}"));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let url = format!("{}/ws{query}", base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().expect("request");
        let headers = request.headers_mut();
        if let Some(token) = how.token {
            let (name, value) = if how.cookie {
                ("cookie", format!("other=1; slimy_admin_token={token}"))
            } else {
                ("authorization", format!("Bearer {token}"))
            };
            headers.insert(name, value.parse().expect("header"));
        }
        if let Some(origin) = how.origin {
            headers.insert("origin", origin.parse().expect("header"));
        }
        let (ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let error = json["error"].as_str().unwrap_or_default().to_owned();
                return Err(Refusal { status, error });
            }
            Err(other) => panic!("connect failed: {other}"),
        };
        let mut client = Client {
            ws,
            encoding,
            hello: placeholder_hello(),
            stash: VecDeque::new(),
            presence: VecDeque::new(),
            next_ref: 0,
        };
        match client.recv().await {
            ServerFrame::Hello(hello) => client.hello = hello,
            other => panic!("expected hello, got {other:?}"),
        }
        Ok(client)
    }

    /// Sends a JSON value as a frame in this connection's encoding.
    pub async fn send_value(&mut self, value: serde_json::Value) {
        let message = match self.encoding {
            Encoding::Json => Message::Text(value.to_string().into()),
            Encoding::MsgPack => {
                Message::Binary(rmp_serde::to_vec_named(&value).expect("msgpack").into())
            }
        };
        self.send_raw(message).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Sends `{"type":"send", ...fields, "ref": <fresh>}` and returns the ref.
    pub async fn send(&mut self, mut fields: serde_json::Value) -> String {
        self.next_ref += 1;
        let reference = format!("r{}", self.next_ref);
        fields["type"] = "send".into();
        fields["ref"] = reference.clone().into();
        self.send_value(fields).await;
        reference
    }

    /// Sends `fields` as a `send` and waits for its answer.
    pub async fn request(&mut self, fields: serde_json::Value) -> Result<Ack, ErrorFrame> {
        let reference = self.send(fields).await;
        self.answer(&reference).await
    }

    /// Posts a text and waits for its answer.
    pub async fn post(&mut self, guild: &str, text: &str) -> Result<Ack, ErrorFrame> {
        let reference = self
            .send(serde_json::json!({"guildId": guild, "text": text}))
            .await;
        self.answer(&reference).await
    }

    /// The ack or error answering `reference`; other frames are kept for later.
    pub async fn answer(&mut self, reference: &str) -> Result<Ack, ErrorFrame> {
        let found = self
            .wait_for(|f| match f {
                ServerFrame::Ack(a) => a.reference.as_deref() == Some(reference),
                ServerFrame::Error(e) => e.reference.as_deref() == Some(reference),
                _ => false,
            })
            .await;
        match found {
            ServerFrame::Ack(ack) => Ok(ack),
            ServerFrame::Error(error) => Err(error),
            _ => unreachable!(),
        }
    }

    /// The next `message` frame; other frames are kept for later.
    pub async fn message(&mut self) -> SequencedMessage {
        match self
            .wait_for(|f| matches!(f, ServerFrame::Message(_)))
            .await
        {
            ServerFrame::Message(m) => m,
            _ => unreachable!(),
        }
    }

    /// The first frame matching `pred`, from the kept frames or the socket.
    pub async fn wait_for(&mut self, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        if let Some(i) = self.stash.iter().position(&pred) {
            return self.stash.remove(i).expect("present");
        }
        loop {
            let frame = self.read().await;
            if pred(&frame) {
                return frame;
            }
            self.stash.push_back(frame);
        }
    }

    /// The next frame of any kind.
    pub async fn recv(&mut self) -> ServerFrame {
        match self.stash.pop_front() {
            Some(frame) => frame,
            None => self.read().await,
        }
    }

    /// The next frame that is not a presence frame (those are kept for
    /// [`Client::presence_frame`]).
    async fn read(&mut self) -> ServerFrame {
        loop {
            let frame = self.read_any().await;
            if is_presence(&frame) {
                self.presence.push_back(frame);
                continue;
            }
            return frame;
        }
    }

    /// The next `presence`, `presence_diff` or `typing` frame; other frames are kept.
    pub async fn presence_frame(&mut self) -> ServerFrame {
        loop {
            if let Some(frame) = self.presence.pop_front() {
                return frame;
            }
            let frame = self.read_any().await;
            if is_presence(&frame) {
                return frame;
            }
            self.stash.push_back(frame);
        }
    }

    /// The next presence frame if one arrives within `wait`.
    pub async fn presence_within(&mut self, wait: Duration) -> Option<ServerFrame> {
        tokio::time::timeout(wait, self.presence_frame()).await.ok()
    }

    async fn read_any(&mut self) -> ServerFrame {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => panic!("socket error: {e}"),
                Ok(None) => panic!("socket closed"),
                Err(_) => panic!("no frame within {WAIT:?}"),
            };
            let bytes = match message {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                Message::Close(frame) => panic!("closed by server: {frame:?}"),
                _ => continue,
            };
            return decode_server_frame(&bytes, self.encoding).expect("server frame decodes");
        }
    }

    /// Reads until the server closes; returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return None,
                Err(_) => panic!("not closed within {WAIT:?}"),
            }
        }
    }

    /// Ping/pong round trip: proves the connection is open and everything sent before was
    /// processed.
    pub async fn round_trip(&mut self) {
        self.next_ref += 1;
        let reference = format!("p{}", self.next_ref);
        self.send_value(serde_json::json!({"type":"ping","ref": reference}))
            .await;
        self.wait_for(|f| matches!(f, ServerFrame::Pong(p) if p.reference.as_deref() == Some(reference.as_str())))
            .await;
    }

    /// Messages received but not yet asked for.
    pub fn stashed_messages(&self) -> usize {
        self.stash
            .iter()
            .filter(|f| matches!(f, ServerFrame::Message(_)))
            .count()
    }

    /// The next frame, or the close frame (`Err`) when the server closes.
    pub async fn next_or_close(&mut self) -> Result<ServerFrame, Option<CloseFrame>> {
        if let Some(frame) = self.stash.pop_front() {
            return Ok(frame);
        }
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return Err(frame),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Ok(decode_server_frame(t.as_bytes(), self.encoding).expect("frame"));
                }
                Ok(Some(Ok(Message::Binary(b)))) => {
                    return Ok(decode_server_frame(&b, self.encoding).expect("frame"));
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return Err(None),
                Err(_) => panic!("nothing within {WAIT:?}"),
            }
        }
    }

    /// Acks received but not yet asked for.
    pub fn stashed_acks(&self) -> usize {
        self.stash
            .iter()
            .filter(|f| matches!(f, ServerFrame::Ack(_)))
            .count()
    }

    /// Drops the connection without a close handshake.
    pub async fn drop_connection(self) {
        drop(self.ws);
    }
}

fn placeholder_hello() -> Hello {
    Hello {
        protocol: 0,
        connection_id: String::new(),
        user: chat_shared::protocol::identity::UserInfo::bot(),
        guilds: Vec::new(),
        admin: false,
        heartbeat_ms: 0,
        max_text_chars: 0,
    }
}

/// Whether a frame belongs to presence and typing (issue #13).
fn is_presence(frame: &ServerFrame) -> bool {
    matches!(
        frame,
        ServerFrame::Presence(_) | ServerFrame::PresenceDiff(_) | ServerFrame::Typing(_)
    )
}
