//! The NATS bus against a real `nats-server -js`, one fresh server per test: the same
//! behaviour as the in-memory bus, plus what only a network bus has (several processes,
//! garbage on the wire, a server restart).

mod bot_queue;
mod delivery;
mod ingress;
mod log;
mod replay;
mod restart;
mod setup;
mod support;
