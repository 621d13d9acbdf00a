//! The WebSocket under both transports that use one (`/ws` and Socket.IO's `websocket`): the
//! upgrade ([`Upgrade`]: axum's checks, but the gateway keeps the tokio-tungstenite stream
//! itself and nothing of the handshake once the connection runs) and the [`WebSocket`] a
//! connection reads and writes (data frames written straight from their shared bytes, no
//! write buffer kept between writes).

use tungstenite::protocol::WebSocketConfig;

mod socket;
mod upgrade;

pub use socket::{Data, Stalled, WebSocket};
pub use upgrade::{Stream, Upgrade, UpgradeRejection};

/// Bytes the socket layer reads at once per connection, allocated for as long as it is open:
/// small, because client frames are small (a `send` of a 100-character text is ~170 bytes: one
/// read) and every idle connection keeps it; a larger frame grows the buffer while it is read.
const READ_BUFFER: usize = 256;

/// The socket settings of both transports: messages and frames of at most `max_bytes`, and
/// `write_buffer` bytes of what tungstenite itself writes gathered before a write (0: each at
/// once; our data frames never pass through it).
pub fn config(max_bytes: usize, write_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(write_buffer)
        .max_message_size(Some(max_bytes))
        .max_frame_size(Some(max_bytes))
}
