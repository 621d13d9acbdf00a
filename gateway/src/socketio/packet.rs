//! Engine.IO v4 and Socket.IO v5 text framing, pure: decoding what a client sends (an Engine.IO
//! packet, a polling payload of several, the Socket.IO packet inside a `message`) and encoding
//! what the server sends. Binary attachments are not supported and decode as an error.

use serde_json::Value;
use thiserror::Error;

/// The record separator between packets of one HTTP long-polling payload.
pub const SEPARATOR: char = '\u{1e}';
/// The only namespace served.
pub const DEFAULT_NAMESPACE: &str = "/";
/// Largest ack id accepted (the client counts from 0; JavaScript's safe integers end here).
const MAX_ACK_ID: u64 = (1 << 53) - 1;

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    #[error("binary packets are not supported")]
    Binary,
    #[error("bad ack id")]
    BadAckId,
    #[error("namespace not terminated")]
    BadNamespace,
    #[error("bad JSON payload")]
    BadJson,
    #[error("payload of the wrong shape")]
    BadShape,
}

/// An Engine.IO packet from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    Close,
    /// `2probe` during an upgrade (the client does not ping otherwise in v4).
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Decodes one Engine.IO text packet.
pub fn decode_engine(text: &str) -> Result<EnginePacket<'_>, PacketError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(PacketError::Empty)?;
    let rest = chars.as_str();
    match kind {
        '1' => Ok(EnginePacket::Close),
        '2' => Ok(EnginePacket::Ping(rest)),
        '3' => Ok(EnginePacket::Pong(rest)),
        '4' => Ok(EnginePacket::Message(rest)),
        '5' => Ok(EnginePacket::Upgrade),
        '6' => Ok(EnginePacket::Noop),
        'b' => Err(PacketError::Binary),
        other => Err(PacketError::UnknownType(other)),
    }
}

/// Splits a long-polling payload into its packets (empty parts are skipped).
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(SEPARATOR).filter(|p| !p.is_empty())
}

/// A Socket.IO packet from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum SioPacket {
    /// CONNECT to `namespace`, with the `auth` object when one was sent.
    Connect {
        namespace: String,
        auth: Option<Value>,
    },
    Disconnect {
        namespace: String,
    },
    /// An event: its name, arguments, and ack id when the client waits for an answer.
    Event {
        namespace: String,
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    },
    /// The client's answer to a server event that asked for one.
    Ack {
        namespace: String,
        id: u64,
        args: Vec<Value>,
    },
}

/// Decodes the Socket.IO packet carried by an Engine.IO `message`.
pub fn decode_sio(text: &str) -> Result<SioPacket, PacketError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(PacketError::Empty)?;
    let rest = chars.as_str();
    if matches!(kind, '5' | '6') {
        return Err(PacketError::Binary);
    }
    if !matches!(kind, '0'..='3') {
        return Err(PacketError::UnknownType(kind));
    }
    let (namespace, rest) = split_namespace(rest)?;
    let (ack, rest) = split_ack_id(rest)?;
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(rest).map_err(|_| PacketError::BadJson)?)
    };
    match kind {
        '0' => match data {
            None | Some(Value::Object(_)) => Ok(SioPacket::Connect {
                namespace,
                auth: data,
            }),
            Some(_) => Err(PacketError::BadShape),
        },
        '1' => Ok(SioPacket::Disconnect { namespace }),
        '2' => {
            let Some(Value::Array(mut args)) = data else {
                return Err(PacketError::BadShape);
            };
            if args.is_empty() {
                return Err(PacketError::BadShape);
            }
            let Value::String(name) = args.remove(0) else {
                return Err(PacketError::BadShape);
            };
            Ok(SioPacket::Event {
                namespace,
                name,
                args,
                ack,
            })
        }
        _ => {
            let id = ack.ok_or(PacketError::BadAckId)?;
            let Some(Value::Array(args)) = data else {
                return Err(PacketError::BadShape);
            };
            Ok(SioPacket::Ack {
                namespace,
                id,
                args,
            })
        }
    }
}

/// `/name,rest` → (`/name`, rest); anything else is the default namespace.
fn split_namespace(text: &str) -> Result<(String, &str), PacketError> {
    if !text.starts_with('/') {
        return Ok((DEFAULT_NAMESPACE.to_owned(), text));
    }
    match text.find(',') {
        Some(end) => Ok((text[..end].to_owned(), &text[end + 1..])),
        // A bare namespace with nothing after it (`0/admin`).
        None if !text.contains(['[', '{']) => Ok((text.to_owned(), "")),
        None => Err(PacketError::BadNamespace),
    }
}

/// Leading digits → the ack id.
fn split_ack_id(text: &str) -> Result<(Option<u64>, &str), PacketError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Ok((None, text));
    }
    let id: u64 = text[..digits].parse().map_err(|_| PacketError::BadAckId)?;
    if id > MAX_ACK_ID {
        return Err(PacketError::BadAckId);
    }
    Ok((Some(id), &text[digits..]))
}

/// The Engine.IO `open` packet: the session id and its heartbeat settings.
pub fn encode_open(
    sid: &str,
    upgrades: &[&str],
    ping_ms: u64,
    timeout_ms: u64,
    max: usize,
) -> String {
    let open = serde_json::json!({
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": ping_ms,
        "pingTimeout": timeout_ms,
        "maxPayload": max,
    });
    format!("0{open}")
}

/// Engine.IO packets the server sends with no payload.
pub const ENGINE_CLOSE: &str = "1";
pub const ENGINE_PING: &str = "2";
pub const ENGINE_NOOP: &str = "6";
pub const PROBE_PONG: &str = "3probe";

/// `prefix` for the namespace of a server packet (nothing for the default one).
fn namespace_prefix(namespace: &str) -> String {
    if namespace == DEFAULT_NAMESPACE {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// CONNECT answer (every `encode_*` of Socket.IO is the payload of an Engine.IO message): the socket id and the recovery session id.
pub fn encode_connect(sid: &str, pid: &str) -> String {
    format!("0{}", serde_json::json!({ "sid": sid, "pid": pid }))
}

/// CONNECT_ERROR with `message` (socket.io-client: `connect_error`, `err.message`).
pub fn encode_connect_error(namespace: &str, message: &str) -> String {
    format!(
        "4{}{}",
        namespace_prefix(namespace),
        serde_json::json!({ "message": message })
    )
}

/// A server-side DISCONNECT of the default namespace (the client does not reconnect).
pub fn encode_disconnect() -> String {
    "1".to_owned()
}

/// An EVENT: `name` then `args`.
pub fn encode_event(name: &str, args: &[&Value]) -> String {
    let mut array = Vec::with_capacity(args.len() + 1);
    array.push(Value::String(name.to_owned()));
    array.extend(args.iter().map(|v| (*v).clone()));
    format!("2{}", Value::Array(array))
}

/// The ACK of client event `id`, with one argument.
pub fn encode_ack(id: u64, arg: &Value) -> String {
    format!("3{id}[{arg}]")
}

/// Joins packets into one long-polling payload.
pub fn join_payload<'a>(packets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, packet) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(packet);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_packets_decode() {
        let table = [
            ("1", Ok(EnginePacket::Close)),
            ("2probe", Ok(EnginePacket::Ping("probe"))),
            ("3", Ok(EnginePacket::Pong(""))),
            ("40", Ok(EnginePacket::Message("0"))),
            ("5", Ok(EnginePacket::Upgrade)),
            ("6", Ok(EnginePacket::Noop)),
            ("", Err(PacketError::Empty)),
            ("bAQID", Err(PacketError::Binary)),
            ("9", Err(PacketError::UnknownType('9'))),
            ("é", Err(PacketError::UnknownType('é'))),
        ];
        for (text, expected) in table {
            assert_eq!(decode_engine(text), expected, "{text:?}");
        }
    }

    #[test]
    fn payloads_split_on_the_record_separator() {
        let parts: Vec<&str> = split_payload("40\u{1e}42[\"a\"]\u{1e}\u{1e}3").collect();
        assert_eq!(parts, ["40", "42[\"a\"]", "3"]);
        assert_eq!(join_payload(["2", "6"]), "2\u{1e}6");
    }

    #[test]
    fn socketio_packets_decode() {
        let root = || DEFAULT_NAMESPACE.to_owned();
        let table: Vec<(&str, Result<SioPacket, PacketError>)> = vec![
            (
                "0",
                Ok(SioPacket::Connect {
                    namespace: root(),
                    auth: None,
                }),
            ),
            (
                r#"0{"token":"t"}"#,
                Ok(SioPacket::Connect {
                    namespace: root(),
                    auth: Some(json!({"token":"t"})),
                }),
            ),
            (
                "0/admin,",
                Ok(SioPacket::Connect {
                    namespace: "/admin".into(),
                    auth: None,
                }),
            ),
            (
                "0/admin",
                Ok(SioPacket::Connect {
                    namespace: "/admin".into(),
                    auth: None,
                }),
            ),
            ("0[1]", Err(PacketError::BadShape)),
            ("1", Ok(SioPacket::Disconnect { namespace: root() })),
            (
                r#"212["chat:message",{"text":"hi"}]"#,
                Ok(SioPacket::Event {
                    namespace: root(),
                    name: "chat:message".into(),
                    args: vec![json!({"text":"hi"})],
                    ack: Some(12),
                }),
            ),
            (
                r#"2["x"]"#,
                Ok(SioPacket::Event {
                    namespace: root(),
                    name: "x".into(),
                    args: vec![],
                    ack: None,
                }),
            ),
            ("2[]", Err(PacketError::BadShape)),
            ("2[1]", Err(PacketError::BadShape)),
            ("2{}", Err(PacketError::BadShape)),
            ("2", Err(PacketError::BadShape)),
            ("2[\"x\"", Err(PacketError::BadJson)),
            ("299999999999999999999[\"x\"]", Err(PacketError::BadAckId)),
            ("29007199254740992[\"x\"]", Err(PacketError::BadAckId)),
            (
                "35[true]",
                Ok(SioPacket::Ack {
                    namespace: root(),
                    id: 5,
                    args: vec![json!(true)],
                }),
            ),
            ("3[true]", Err(PacketError::BadAckId)),
            ("35{}", Err(PacketError::BadShape)),
            ("4{}", Err(PacketError::UnknownType('4'))),
            (
                "51-[\"x\",{\"_placeholder\":true,\"num\":0}]",
                Err(PacketError::Binary),
            ),
            ("6", Err(PacketError::Binary)),
            ("7", Err(PacketError::UnknownType('7'))),
            ("", Err(PacketError::Empty)),
            ("2/x[\"a\"]", Err(PacketError::BadNamespace)),
        ];
        for (text, expected) in table {
            assert_eq!(decode_sio(text), expected, "{text:?}");
        }
    }

    proptest::proptest! {
        /// Any text decodes to a packet or an error, never a panic (the fuzz target
        /// `socketio_packet` does the same with coverage guidance).
        #[test]
        fn any_text_decodes_without_panicking(text in "\\PC{0,64}", raw in proptest::collection::vec(proptest::prelude::any::<char>(), 0..32)) {
            let raw: String = raw.into_iter().collect();
            for input in [text.as_str(), raw.as_str()] {
                let _ = decode_engine(input);
                let _ = decode_sio(input);
                let _ = split_payload(input).count();
            }
        }

        /// What the server encodes, a client-side decoder of the same rules reads back.
        #[test]
        fn events_and_acks_round_trip(name in "[a-z:]{1,12}", text in "\\PC{0,40}", id in 0u64..1_000_000) {
            let arg = serde_json::json!({ "text": text });
            let event = encode_event(&name, &[&arg]);
            let decoded = decode_sio(&event);
            proptest::prop_assert_eq!(
                decoded,
                Ok(SioPacket::Event { namespace: "/".into(), name: name.clone(), args: vec![arg.clone()], ack: None })
            );
            let ack = encode_ack(id, &arg);
            proptest::prop_assert_eq!(
                decode_sio(&ack),
                Ok(SioPacket::Ack { namespace: "/".into(), id, args: vec![arg] })
            );
        }
    }

    #[test]
    fn server_packets_encode() {
        assert_eq!(encode_connect("s", "p"), r#"0{"pid":"p","sid":"s"}"#);
        assert_eq!(
            encode_connect_error("/", "not_authorized"),
            r#"4{"message":"not_authorized"}"#
        );
        assert_eq!(
            encode_connect_error("/admin", "Invalid namespace"),
            r#"4/admin,{"message":"Invalid namespace"}"#
        );
        assert_eq!(
            encode_event("e", &[&json!({"a":1}), &json!("o")]),
            r#"2["e",{"a":1},"o"]"#
        );
        assert_eq!(encode_ack(3, &json!({"ok":true})), r#"33[{"ok":true}]"#);
        let open = encode_open("abc", &["websocket"], 25_000, 20_000, 1000);
        let parsed: Value = serde_json::from_str(&open[1..]).expect("json");
        assert_eq!(parsed["sid"], "abc");
        assert_eq!(parsed["upgrades"], json!(["websocket"]));
        assert_eq!(parsed["pingInterval"], 25_000);
    }
}
