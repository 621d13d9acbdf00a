//! `redis-server` without persistence, as a child process on a free loopback port.

use tempfile::TempDir;

use crate::ports::free_port;
use crate::server_process::ServerProcess;
use crate::system_binary;

/// A running `redis-server` (killed on drop). Its data does not survive a stop.
pub struct RedisServer {
    process: ServerProcess,
}

impl RedisServer {
    /// Starts a fresh server and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_in(temp_dir(), Vec::new())
    }

    /// Starts a fresh server whose users are the ACL file text `acl` (`user … on >pass …`).
    pub fn start_with_acl(acl: &str) -> Self {
        let dir = temp_dir();
        let path = dir.path().join("users.acl");
        std::fs::write(&path, acl).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
        Self::start_in(
            dir,
            vec!["--aclfile".to_owned(), path.display().to_string()],
        )
    }

    /// A server on a free loopback port keeping its files in `dir`, persisting nothing by
    /// itself, with `extra` arguments.
    fn start_in(dir: TempDir, extra: Vec<String>) -> Self {
        let binary = system_binary::find("redis-server", "redis-server");
        let port = free_port();
        let mut args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            dir.path().display().to_string(),
        ];
        args.extend(extra);
        RedisServer {
            process: ServerProcess::start("redis-server", binary, args, port, dir),
        }
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.process.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Kills the server (SIGKILL); the port stays for [`Self::start_again`].
    pub fn stop(&self) {
        self.process.stop();
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub fn start_again(&self) {
        self.process.start_again();
    }
}

fn temp_dir() -> TempDir {
    TempDir::with_prefix("testkit-redis-")
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}
