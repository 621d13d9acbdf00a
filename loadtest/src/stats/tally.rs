//! Counting things by reason: connection failures, error codes, unexpected closes.

use std::collections::BTreeMap;
use std::fmt::Display;

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    pub fn add(&self, reason: impl Display) {
        *self.counts.lock().entry(reason.to_string()).or_insert(0) += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.lock().values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().clone()
    }
}
