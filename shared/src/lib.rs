//! What every chat process shares: the wire contract ([`protocol`], [`codec`]), identity and
//! tokens ([`identity`], [`auth`]), the bus and session-store traits with their in-memory
//! implementations, configuration and telemetry.

pub mod auth;
pub mod bus;
pub mod clock;
pub mod codec;
pub mod config;
pub mod conn_leases;
pub mod identity;
pub mod instrumented;
pub mod memory_bus;
pub mod memory_presence;
pub mod memory_store;
pub mod nats;
pub mod ops;
pub mod otel;
mod otel_http;
pub mod presence_bus;
pub mod presence_frames;
pub mod protocol;
pub mod rate_limit;
mod redis_leases;
pub mod redis_store;
pub mod session;
pub mod telemetry;
pub mod trace_context;
pub mod validate;
