//! A server binary run as a child process on a fixed loopback port with a private data
//! directory: started and waited for, stopped (killed, keeping its port and data) and started
//! again, killed on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::output;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

pub struct ServerProcess {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    port: u16,
    dir: TempDir,
    child: Mutex<Option<Child>>,
}

impl ServerProcess {
    /// Starts `binary args…` (the args name `port` and paths inside `dir`) and waits until
    /// it accepts connections on `port`.
    pub fn start(
        name: &'static str,
        binary: PathBuf,
        args: Vec<String>,
        port: u16,
        dir: TempDir,
    ) -> Self {
        let server = ServerProcess {
            name,
            binary,
            args,
            port,
            dir,
            child: Mutex::new(None),
        };
        server.start_again();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.slot().is_some()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.name))
    }

    /// Kills the server (SIGKILL) and waits for it; its port and data stay.
    pub fn stop(&self) {
        if let Some(mut child) = self.slot().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data; a no-op when running.
    pub fn start_again(&self) {
        let mut slot = self.slot();
        if slot.is_some() {
            return;
        }
        let (stdout, stderr) = output::capture(&self.log_path());
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.wait_until_listening(slot.insert(child));
    }

    fn wait_until_listening(&self, child: &mut Child) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, PROBE_INTERVAL * 10).is_ok() {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{} exited with {status} before listening on {addr}:\n{}",
                    self.name,
                    output::tail(&self.log_path(), 30)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                    self.name,
                    output::tail(&self.log_path(), 30)
                );
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        output::print_tail_if_panicking(self.name, &self.log_path());
        self.stop();
    }
}
