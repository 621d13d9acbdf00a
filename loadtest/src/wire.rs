//! Frames on the client side of the socket: client frames become WebSocket messages in the
//! chosen encoding (text for JSON, binary for MessagePack), server messages become frames.

use bytes::Bytes;
use chat_shared::protocol::codec::{self, Encoding};
use chat_shared::protocol::{ClientFrame, ServerFrame};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

/// A frame encoded for the wire.
pub fn encode_client(frame: &ClientFrame, encoding: Encoding) -> Result<Message, String> {
    let bytes = codec::encode(frame, encoding).map_err(|e| e.to_string())?;
    into_message(bytes, encoding)
}

/// Wraps already encoded bytes in the message kind the encoding uses.
pub fn into_message(bytes: Bytes, encoding: Encoding) -> Result<Message, String> {
    if encoding.is_binary() {
        Ok(Message::Binary(bytes))
    } else {
        Utf8Bytes::try_from(bytes)
            .map(Message::Text)
            .map_err(|e| format!("json frame is not UTF-8: {e}"))
    }
}

/// What a received WebSocket message means to a client.
#[derive(Debug)]
pub enum Incoming {
    Frame(ServerFrame),
    /// A data message that is not a valid server frame.
    Garbage(String),
    /// The server closed with this code (if any).
    Closed(Option<u16>),
    /// Ping/pong traffic (answered by tungstenite itself).
    Control,
}

/// Classifies one message read from the socket.
pub fn decode_server(message: Message, encoding: Encoding) -> Incoming {
    let decoded = match message {
        Message::Text(text) => codec::decode_server_frame(text.as_bytes(), encoding),
        Message::Binary(bytes) => codec::decode_server_frame(&bytes, encoding),
        Message::Close(frame) => return Incoming::Closed(frame.map(|f| f.code.into())),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Incoming::Control,
    };
    match decoded {
        Ok(frame) => Incoming::Frame(frame),
        Err(e) => Incoming::Garbage(e.reason),
    }
}
