//! The output file of a child process: created in a temporary directory, shared by stdout
//! and stderr, and read back (its tail) when a test fails.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;

/// Opens `path` for appending and returns it as stdout and stderr of a child.
pub fn capture(path: &Path) -> (Stdio, Stdio) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open output file {}: {e}", path.display()));
    let err = file
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot share output file {}: {e}", path.display()));
    (Stdio::from(file), Stdio::from(err))
}

/// The last `lines` lines of the output file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Prints the tail of a process's output when the current thread is panicking (a test is
/// failing), so the failure shows what the process said.
pub fn print_tail_if_panicking(name: &str, path: &Path) {
    if std::thread::panicking() {
        eprintln!(
            "----- last output of {name} ({}) -----\n{}\n----- end of {name} -----",
            path.display(),
            tail(path, 60)
        );
    }
}
