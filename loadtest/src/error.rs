//! Errors a run can end with. Failures of individual connections or messages are not errors:
//! they are counted in the report's failures table.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LoadTestError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("open-file limit: {0}")]
    FileLimit(String),
    #[error("cannot create the load-test users: {0}")]
    Users(String),
    #[error("cannot start the ceiling server: {0}")]
    Ceiling(#[source] std::io::Error),
    #[error("the run exceeded its hard time limit of {0:?} (--timeout)")]
    Timeout(Duration),
    #[error("the abusers' process: {0}")]
    Abusers(String),
    #[error("cannot write {path}: {reason}")]
    Output { path: String, reason: String },
}

impl LoadTestError {
    /// A configuration error with a message.
    pub fn config(message: impl Into<String>) -> Self {
        LoadTestError::Config(message.into())
    }
}
