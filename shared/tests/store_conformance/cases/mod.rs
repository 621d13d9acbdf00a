//! The conformance cases, one file per part of the `SessionStore` trait; each case takes any
//! store.

pub mod leases;
pub mod sessions;
