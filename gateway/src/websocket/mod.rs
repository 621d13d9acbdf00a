//! The WebSocket under both transports that use one (`/ws` and Socket.IO's `websocket`): the
//! upgrade ([`Upgrade`]: axum's checks, but the gateway keeps the tokio-tungstenite stream
//! itself and nothing of the handshake once the connection runs) and the [`WebSocket`] a
//! connection reads and writes (data frames written straight from their shared bytes, no
//! write buffer kept between writes).

mod socket;
mod upgrade;

pub use socket::{Data, Stalled, WebSocket};
pub use upgrade::{Stream, Upgrade, UpgradeRejection};
