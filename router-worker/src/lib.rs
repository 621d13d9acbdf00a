//! The router worker as a library: it takes sends from the bus's ingress and decides them
//! (`route.rs`), one guild at a time in arrival order ([`dispatch`]), answering each exactly once.
//! Embedded mode runs it in the gateway's process; distributed mode runs any number of
//! `router-worker` processes sharing the ingress.

mod dispatch;
mod guild;
mod metrics;
mod route;

pub use dispatch::run;
pub use metrics::RouterMetrics;
pub use route::RouterConfig;
