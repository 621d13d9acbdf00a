//! What every chat process shares, one directory per concept: the wire contract
//! ([`protocol`]: frames, codecs, validation, identity), tokens ([`auth`]), the bus
//! ([`bus`]: trait, in-memory and NATS implementations, metrics decorator), the session store
//! ([`store`]: trait, in-memory and Redis implementations, connection leases, rate limits,
//! metrics decorator), logging/tracing/OTLP ([`telemetry`]), configuration, clocks and the
//! ops endpoints.

pub mod auth;
pub mod bus;
pub mod clock;
pub mod config;
pub mod ops;
pub mod protocol;
pub mod store;
pub mod telemetry;
