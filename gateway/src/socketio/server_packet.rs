//! An Engine.IO packet the server sends (text), in two parts: a head and a tail. A packet made
//! for one socket (CONNECT answer, ack, ping) is all head. A `chat:message` emit is the head
//! every socket that gets the entry shares — `42["chat:message",{…}`, encoded once per log
//! entry — and this socket's own tail: its recovery offset and the closing `]`. The WebSocket
//! writes both parts as one frame without joining them; a long poll joins them.

use tungstenite::Utf8Bytes;

/// A server packet: its text is `head` then `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPacket {
    head: Utf8Bytes,
    tail: Utf8Bytes,
}

impl ServerPacket {
    /// A packet of a shared head and this socket's tail.
    pub fn joined(head: Utf8Bytes, tail: String) -> Self {
        ServerPacket {
            head,
            tail: tail.into(),
        }
    }

    /// Bytes of its text.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its parts, for a writer that sends them as one frame.
    pub fn into_parts(self) -> (Utf8Bytes, Utf8Bytes) {
        (self.head, self.tail)
    }

    /// Its text in one string (a long poll's payload joins packets).
    pub fn into_text(self) -> String {
        if self.tail.is_empty() {
            return self.head.as_str().to_owned();
        }
        let mut text = String::with_capacity(self.len());
        text.push_str(self.head.as_str());
        text.push_str(self.tail.as_str());
        text
    }
}

impl From<String> for ServerPacket {
    fn from(text: String) -> Self {
        ServerPacket {
            head: text.into(),
            tail: Utf8Bytes::default(),
        }
    }
}

impl From<&'static str> for ServerPacket {
    fn from(text: &'static str) -> Self {
        ServerPacket {
            head: Utf8Bytes::from_static(text),
            tail: Utf8Bytes::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_text_is_head_then_tail() {
        let cases: [(ServerPacket, &str); 4] = [
            ("2".into(), "2"),
            (String::from("40{}").into(), "40{}"),
            (
                ServerPacket::joined("42[\"a\",1".into(), ",\"o\"]".into()),
                "42[\"a\",1,\"o\"]",
            ),
            (ServerPacket::joined("".into(), String::new()), ""),
        ];
        for (packet, text) in cases {
            assert_eq!(packet.len(), text.len(), "{text}");
            assert_eq!(packet.is_empty(), text.is_empty(), "{text}");
            let (head, tail) = packet.clone().into_parts();
            assert_eq!(format!("{head}{tail}"), text);
            assert_eq!(packet.into_text(), text);
        }
    }
}
