//! Metrics around the two dependencies every process talks to: [`InstrumentedBus`] and
//! [`InstrumentedStore`] wrap a [`crate::bus::Bus`] / [`crate::session::SessionStore`] and
//! record each call's duration and errors by operation; [`nats_events`] counts NATS connection
//! events (disconnects, reconnects). Every binary registers them into its `/metrics` registry
//! under the same names, so one dashboard panel covers gateways and workers.

mod bus;
mod calls;
pub mod nats_events;
mod store;

pub use bus::InstrumentedBus;
pub use store::InstrumentedStore;
