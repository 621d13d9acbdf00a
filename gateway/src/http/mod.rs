//! The HTTP side of the gateway: the JSON API ([`api`], [`dev_login`]), health and metrics
//! ([`ops`]), the browser page ([`assets`]), and request authentication ([`auth`]).

pub mod api;
pub mod assets;
pub mod auth;
pub mod dev_login;
pub mod dev_sessions;
pub mod ops;
pub mod presence;
pub mod security_headers;
