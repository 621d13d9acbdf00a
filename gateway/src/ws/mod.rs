//! The `/ws` endpoint: the handshake ([`upgrade`]), the per-connection reader ([`connection`])
//! and writer ([`writer`]) tasks, and the handle the rest of the gateway holds ([`handle`]).

pub mod connection;
pub mod handle;
pub mod upgrade;
pub mod writer;
