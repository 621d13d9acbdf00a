//! The open-file limit: raised to the hard limit at start, then used to refuse client counts
//! that cannot fit in one process.

use crate::error::LoadTestError;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the limit now in force.
pub fn raise_open_file_limit() -> Result<u64, LoadTestError> {
    rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| LoadTestError::FileLimit(format!("cannot read or raise RLIMIT_NOFILE: {e}")))
}
