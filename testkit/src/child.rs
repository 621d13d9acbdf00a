//! A workspace binary (or any program) run as a child process by a test: its stdout and stderr
//! go to a file in a private temporary directory, whose tail is printed when the test panics.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::output;

const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A running child process (killed on drop).
pub struct ChildService {
    name: String,
    child: Child,
    log_path: PathBuf,
    _dir: TempDir,
}

impl ChildService {
    /// Starts `path args…` with `envs` added to the test's environment.
    pub fn spawn<A, K, V>(
        path: impl AsRef<Path>,
        args: impl IntoIterator<Item = A>,
        envs: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        A: AsRef<OsStr>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let dir = TempDir::with_prefix(format!("testkit-{name}-"))
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let log_path = dir.path().join(format!("{name}.log"));
        let (stdout, stderr) = output::capture(&log_path);
        let child = Command::new(path)
            .args(args)
            .envs(envs)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        ChildService {
            name,
            child,
            log_path,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of its output.
    pub fn log_tail(&self, lines: usize) -> String {
        output::tail(&self.log_path, lines)
    }

    /// Waits up to `timeout` for `needle` to appear in its output.
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read(&self.log_path).unwrap_or_default();
            if String::from_utf8_lossy(&text).contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits up to `timeout` for an output line starting with `prefix`; the rest of that line,
    /// or `None` when it exits or the time is up first (a server printing the address it
    /// bound: start it on port 0 and read the port here, instead of picking one beforehand).
    pub async fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read(&self.log_path).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            if let Some(rest) = text.lines().find_map(|line| line.strip_prefix(prefix)) {
                return Some(rest.to_owned());
            }
            if !self.is_running() || Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Kills it at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM); see [`Self::wait_exit`].
    pub fn terminate(&mut self) {
        if !self.is_running() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) only sends a signal; `pid` is our own running child, not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for it to exit; `None` when it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        output::print_tail_if_panicking(&self.name, &self.log_path);
        self.kill();
    }
}
