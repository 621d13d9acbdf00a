//! `nats-server` with JetStream, as a child process on a free loopback port.

use tempfile::TempDir;

use crate::ports::free_port;
use crate::server_process::ServerProcess;
use crate::system_binary;

/// A running `nats-server -js` (killed on drop).
pub struct NatsServer {
    process: ServerProcess,
}

impl NatsServer {
    /// Starts a fresh server (empty JetStream store) and waits until it accepts connections.
    pub fn start() -> Self {
        let binary = system_binary::find("nats-server", "nats-server");
        let dir = TempDir::with_prefix("testkit-nats-")
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let port = free_port();
        let store = dir.path().join("jetstream");
        let args = vec![
            "-js".to_owned(),
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-sd".to_owned(),
            store.display().to_string(),
        ];
        NatsServer {
            process: ServerProcess::start("nats-server", binary, args, port, dir),
        }
    }

    /// Starts a fresh server with a configuration file's text (accounts, users, permissions);
    /// the port, the loopback address and the JetStream store are set on the command line.
    pub fn start_with_config(config: &str) -> Self {
        let binary = system_binary::find("nats-server", "nats-server");
        let dir = TempDir::with_prefix("testkit-nats-")
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let path = dir.path().join("nats-server.conf");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
        let port = free_port();
        let store = dir.path().join("jetstream");
        let args = ["-c", &path.display().to_string(), "-js", "-a", "127.0.0.1"]
            .into_iter()
            .map(str::to_owned)
            .chain(["-p".to_owned(), port.to_string()])
            .chain(["-sd".to_owned(), store.display().to_string()])
            .collect();
        NatsServer {
            process: ServerProcess::start("nats-server", binary, args, port, dir),
        }
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.process.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Kills the server (SIGKILL); the port and the JetStream store stay for [`Self::start_again`].
    pub fn stop(&self) {
        self.process.stop();
    }

    /// Starts it again on the same port with the same store.
    pub fn start_again(&self) {
        self.process.start_again();
    }
}
