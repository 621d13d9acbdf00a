//! Opening one authenticated client connection: pick a target (round-robin) and a source
//! address (spread so binds stay fast), connect the TCP socket, run the WebSocket handshake
//! with the user's credentials and wait for `hello`. Every way this can fail becomes a
//! [`ConnectFailure`] whose text is the row of the failures table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use chat_shared::protocol::codec::Encoding;
use chat_shared::protocol::{Hello, ServerFrame};
use futures::StreamExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Error as WsError};
use tracing::Instrument;

use crate::error::LoadTestError;
use crate::socketio::Protocol;
use crate::users::{ClientAuth, VirtualUser};
use crate::wire::{Incoming, decode_server};

/// A client's connection: a WebSocket of `/ws` frames, or Socket.IO seen as `/ws` frames.
pub type WsStream = crate::socketio::ClientStream;

/// WebSocket buffer sizes per client connection (small: thousands of clients per process).
const CLIENT_BUFFER_BYTES: usize = 4096;

/// A parsed `ws://host:port/path` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Parses a target URL; only plain `ws://` is supported.
    pub fn parse(raw: &str) -> Result<Target, String> {
        let uri: Uri = raw
            .parse()
            .map_err(|e| format!("target {raw:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("ws") {
            return Err(format!(
                "target {raw:?} must start with ws:// (TLS is not supported)"
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("target {raw:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Target {
            url: raw.to_owned(),
            host,
            port: uri.port_u16().unwrap_or(80),
        })
    }

    /// Whether the host is `localhost` or a loopback IP.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The HTTP base (`http://host:port`) of the same server.
    pub fn http_base(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// Refused before the upgrade with a status and the contract's `{"error": CODE}` body.
    Http {
        status: u16,
        code: Option<String>,
    },
    Io(std::io::ErrorKind),
    Timeout,
    ClosedBeforeHello(Option<u16>),
    UnexpectedFrame(String),
    WebSocket(String),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailure::Http { status, code } => {
                write!(
                    f,
                    "http {status} {}",
                    code.as_deref().unwrap_or("(no error code)")
                )
            }
            ConnectFailure::Io(kind) => write!(f, "io {kind}"),
            ConnectFailure::Timeout => f.write_str("connect timeout"),
            ConnectFailure::ClosedBeforeHello(Some(code)) => {
                write!(f, "closed before hello (code {code})")
            }
            ConnectFailure::ClosedBeforeHello(None) => f.write_str("closed before hello"),
            ConnectFailure::UnexpectedFrame(what) => write!(f, "first frame not hello: {what}"),
            ConnectFailure::WebSocket(what) => write!(f, "websocket {what}"),
        }
    }
}

impl From<WsError> for ConnectFailure {
    fn from(error: WsError) -> Self {
        match error {
            WsError::Http(response) => ConnectFailure::Http {
                status: response.status().as_u16(),
                code: response.body().as_deref().and_then(error_code),
            },
            WsError::Io(e) => ConnectFailure::Io(e.kind()),
            WsError::ConnectionClosed | WsError::AlreadyClosed => {
                ConnectFailure::ClosedBeforeHello(None)
            }
            WsError::Protocol(p) => ConnectFailure::WebSocket(format!("protocol: {p}")),
            other => ConnectFailure::WebSocket(kind_name(&other).to_owned()),
        }
    }
}

fn kind_name(error: &WsError) -> &'static str {
    match error {
        WsError::Capacity(_) => "capacity",
        WsError::Url(_) => "url",
        WsError::Utf8(_) => "utf8",
        WsError::HttpFormat(_) => "http format",
        WsError::WriteBufferFull(_) => "write buffer full",
        _ => "error",
    }
}

/// The `error` field of a JSON error body.
fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("error")?.as_str().map(str::to_owned)
}

/// A connection that said `hello`.
pub struct Connected {
    pub stream: WsStream,
    pub hello: Hello,
    /// From the start of the TCP connect to `hello`.
    pub handshake: Duration,
}

/// A target resolved to a socket address.
#[derive(Debug, Clone)]
struct Endpoint {
    addr: SocketAddr,
    url: String,
}

/// Opens client connections spread over targets and source addresses.
#[derive(Debug, Clone)]
pub struct Connector {
    endpoints: Vec<Endpoint>,
    sources: Vec<IpAddr>,
    encoding: Encoding,
    connect_timeout: Duration,
    protocol: Protocol,
}

impl Connector {
    /// Resolves the targets. An empty `sources` means 127.0.0.1–.4 when every target is IPv4
    /// loopback, and the kernel's choice otherwise.
    pub async fn new(
        targets: &[Target],
        sources: &[IpAddr],
        encoding: Encoding,
        connect_timeout: Duration,
    ) -> Result<Self, LoadTestError> {
        let mut endpoints = Vec::with_capacity(targets.len());
        for target in targets {
            let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| LoadTestError::config(format!("cannot resolve {}: {e}", target.url)))?
                .min_by_key(|a| !a.is_ipv4())
                .ok_or_else(|| {
                    LoadTestError::config(format!("{} resolves to nothing", target.url))
                })?;
            endpoints.push(Endpoint {
                addr,
                url: target.url.clone(),
            });
        }
        let sources = if sources.is_empty() && endpoints.iter().all(|e| is_v4_loopback(e.addr)) {
            (1..=4)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect()
        } else {
            sources.to_vec()
        };
        Ok(Connector {
            endpoints,
            sources,
            encoding,
            connect_timeout,
            protocol: Protocol::Ws,
        })
    }

    /// Speaks `protocol` instead of `/ws` frames.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Connects client number `index` as `user` and waits for `hello`.
    pub async fn connect(
        &self,
        index: usize,
        user: &VirtualUser,
    ) -> Result<Connected, ConnectFailure> {
        self.connect_resuming(index, user, &[]).await
    }

    /// [`Connector::connect`], naming resume positions in the handshake
    /// (`?resume=guildId:seq,…`): the gateway replays those guilds before their live messages.
    pub async fn connect_resuming(
        &self,
        index: usize,
        user: &VirtualUser,
        resume: &[(String, u64)],
    ) -> Result<Connected, ConnectFailure> {
        let started = Instant::now();
        let attempt = self
            .open(index, user, resume)
            .instrument(tracing::debug_span!("connect", index, user = %user.id));
        let (stream, hello) = tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| ConnectFailure::Timeout)??;
        Ok(Connected {
            stream,
            hello,
            handshake: started.elapsed(),
        })
    }

    async fn open(
        &self,
        index: usize,
        user: &VirtualUser,
        resume: &[(String, u64)],
    ) -> Result<(WsStream, Hello), ConnectFailure> {
        let endpoint = &self.endpoints[index % self.endpoints.len()];
        let source = self
            .sources
            .get(index % self.sources.len().max(1))
            .copied()
            .filter(|s| s.is_ipv4() == endpoint.addr.is_ipv4());
        let tcp = connect_tcp(endpoint.addr, source)
            .await
            .map_err(|e| ConnectFailure::Io(e.kind()))?;
        let request = self.request(endpoint, user, resume)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(CLIENT_BUFFER_BYTES)
            .write_buffer_size(CLIENT_BUFFER_BYTES);
        let (mut stream, _) =
            tokio_tungstenite::client_async_with_config(request, tcp, Some(config)).await?;
        if self.protocol == Protocol::Socketio {
            return crate::socketio::handshake(stream, user).await;
        }
        let hello = self.await_hello(&mut stream).await?;
        Ok((WsStream::Ws(stream), hello))
    }

    fn request(
        &self,
        endpoint: &Endpoint,
        user: &VirtualUser,
        resume: &[(String, u64)],
    ) -> Result<tungstenite::handshake::client::Request, ConnectFailure> {
        let mut query = Vec::new();
        if !resume.is_empty() {
            let items: Vec<String> = resume.iter().map(|(g, seq)| format!("{g}:{seq}")).collect();
            query.push(format!("resume={}", items.join(",")));
        }
        if self.encoding == Encoding::MsgPack {
            query.push("encoding=msgpack".to_owned());
        }
        if user.auth == ClientAuth::Open {
            query.push(format!("guilds={}", user.guilds.join(",")));
        }
        let url = match self.protocol {
            Protocol::Ws => with_query(&endpoint.url, &query),
            Protocol::Socketio => crate::socketio::engine_url(&endpoint.url),
        };
        let mut request = url.into_client_request()?;
        if let ClientAuth::Bearer(token) = &user.auth {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ConnectFailure::WebSocket("token is not a header value".into()))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        Ok(request)
    }

    async fn await_hello(
        &self,
        stream: &mut WebSocketStream<TcpStream>,
    ) -> Result<Hello, ConnectFailure> {
        loop {
            let message = stream
                .next()
                .await
                .ok_or(ConnectFailure::ClosedBeforeHello(None))??;
            match decode_server(message, self.encoding) {
                Incoming::Frame(ServerFrame::Hello(hello)) => return Ok(hello),
                Incoming::Frame(other) => {
                    return Err(ConnectFailure::UnexpectedFrame(frame_type(&other).into()));
                }
                Incoming::Garbage(reason) => return Err(ConnectFailure::UnexpectedFrame(reason)),
                Incoming::Closed(code) => return Err(ConnectFailure::ClosedBeforeHello(code)),
                Incoming::Control => continue,
            }
        }
    }
}

/// The `type` of a server frame, for failure reasons.
pub fn frame_type(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Hello(_) => "hello",
        ServerFrame::Message(_) => "message",
        ServerFrame::Ack(_) => "ack",
        ServerFrame::Error(_) => "error",
        ServerFrame::Resumed(_) => "resumed",
        ServerFrame::Pong(_) => "pong",
        ServerFrame::Refreshed(_) => "refreshed",
        // Presence (issue #13).
        ServerFrame::Presence(_) => "presence",
        ServerFrame::PresenceDiff(_) => "presence_diff",
        ServerFrame::Typing(_) => "typing",
    }
}

fn is_v4_loopback(addr: SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback())
}

fn with_query(url: &str, params: &[String]) -> String {
    if params.is_empty() {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{}", params.join("&"))
}

async fn connect_tcp(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_nodelay(true)?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_classify() {
        let t = Target::parse("ws://127.0.0.1:8080/ws").expect("parse");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert!(t.is_loopback());
        assert!(Target::parse("ws://[::1]:9/ws").expect("v6").is_loopback());
        assert!(
            Target::parse("ws://localhost/ws")
                .expect("name")
                .is_loopback()
        );
        assert!(
            !Target::parse("ws://10.0.0.1:80/ws")
                .expect("remote")
                .is_loopback()
        );
        assert!(Target::parse("wss://127.0.0.1/ws").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn failures_read_like_table_rows() {
        let http = ConnectFailure::Http {
            status: 401,
            code: error_code(br#"{"error":"not_authorized"}"#),
        };
        assert_eq!(http.to_string(), "http 401 not_authorized");
        assert_eq!(
            ConnectFailure::Io(std::io::ErrorKind::ConnectionRefused).to_string(),
            "io connection refused"
        );
        assert_eq!(with_query("ws://h/ws", &["a=1".into()]), "ws://h/ws?a=1");
        assert_eq!(
            with_query("ws://h/ws?x=2", &["a=1".into()]),
            "ws://h/ws?x=2&a=1"
        );
    }
}
