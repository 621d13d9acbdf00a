//! The conformance cases, one file per part of the `Bus` trait; each case takes any
//! [`crate::support::Deployment`].

pub mod bot_queue;
pub mod history_visible;
pub mod ingress;
pub mod log;
pub mod read;
pub mod topics;
