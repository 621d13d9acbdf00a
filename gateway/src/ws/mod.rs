//! The `/ws` endpoint: the handshake ([`upgrade`], with its `resume` positions in
//! [`resume_param`]), the connection's one task ([`connection`]) and its WebSocket writing
//! side ([`writer`]), the outbound queue ([`queue`]), resume replays and their bounds, the
//! connection's limits ([`limits`]), and the handle the rest of the gateway holds
//! ([`handle`]). The ordering of what a connection
//! receives is the transport-neutral [`crate::outbound`] / [`crate::sequencer`].

pub mod connection;
pub mod handle;
pub mod limits;
pub mod queue;
pub mod registration;
mod replay;
pub mod resume_param;
mod resumes;
pub mod upgrade;
pub mod writer;
