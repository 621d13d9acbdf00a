//! Measurement containers shared by the client tasks of a run.

pub mod latency;
pub mod seen;
pub mod tally;

pub use latency::{CdfPoint, LatencyBook, Percentiles, TimelinePoint};
pub use seen::SeenSet;
pub use tally::Tally;
