//! Load-testing harness for the chat backend. Real WebSocket clients (tokio-tungstenite) speak
//! the `/ws` contract in JSON or MessagePack against one or more gateways, or against an
//! in-process bare broadcast server built from the same socket stack (the "ceiling").
//!
//! Scenarios: [`Scenario::Idle`] (connect and hold), [`Scenario::Fanout`] (open-loop senders,
//! every member records send→receive latency), [`Scenario::Storm`] (drop every connection at
//! once, reconnect and resume) and [`Scenario::Ceiling`] (the fanout load against the bare
//! server). Call [`run`] with a [`RunConfig`]; the binary is a thin CLI over it.

pub mod ceiling_server;
pub mod clock;
pub mod config;
pub mod connect;
pub mod delivery;
pub mod error;
pub mod limits;
pub mod membership;
pub mod plot;
pub mod probe;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod sender;
pub mod socketio;
pub mod stats;
pub mod users;
pub mod watch;
pub mod wire;

pub use config::{CeilingMode, LoadShape, RunConfig, Scenario, UserSource};
pub use error::LoadTestError;
pub use report::Report;
pub use runner::run;
