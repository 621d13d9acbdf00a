//! How NATS client errors become [`BusError`]s: a timeout stays a timeout, everything else
//! means the bus is unavailable for now.

use std::fmt::Display;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{RequestErrorKind, jetstream};

use crate::bus::BusError;

/// Any failure talking to NATS, with what was being done.
pub fn unavailable(doing: &str, error: impl Display) -> BusError {
    BusError::Unavailable(format!("{doing}: {error}"))
}

/// A core request's failure (`submit`).
pub fn from_request(doing: &str, error: &async_nats::RequestError) -> BusError {
    match error.kind() {
        RequestErrorKind::TimedOut => BusError::Timeout,
        RequestErrorKind::NoResponders => unavailable(doing, "no responders"),
        _ => unavailable(doing, error),
    }
}

/// A JetStream publish failure (other than the ones the caller handles itself).
pub fn from_publish(doing: &str, error: &jetstream::context::PublishError) -> BusError {
    match error.kind() {
        PublishErrorKind::TimedOut => BusError::Timeout,
        _ => unavailable(doing, error),
    }
}
