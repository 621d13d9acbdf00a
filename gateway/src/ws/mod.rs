//! The `/ws` endpoint: the handshake ([`upgrade`]), the per-connection reader ([`connection`])
//! and writer ([`writer`]) tasks, resume replays ([`replay`]), and the handle the rest of the
//! gateway holds ([`handle`]).

pub mod connection;
pub mod handle;
pub mod registration;
mod replay;
pub mod upgrade;
pub mod writer;
