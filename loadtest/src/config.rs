//! What a run does: targets, users, timing and the scenario with its load shape, plus the
//! `validate()` step that refuses impossible combinations with a clear message before anything
//! connects.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chat_shared::protocol::codec::Encoding;

use crate::connect::Target;
use crate::error::LoadTestError;
use crate::watch::WatchTarget;

/// Longest text the server accepts by default (`MAX_TEXT_CHARS`).
pub const MAX_MESSAGE_BYTES: usize = 2000;
/// Shortest text that still holds the send timestamp.
pub const MIN_MESSAGE_BYTES: usize = 24;
/// Open files kept free for everything that is not a client socket.
pub const FD_HEADROOM: u64 = 64;
/// Slack added to the estimated run time when no `--timeout` is given.
const DEFAULT_TIMEOUT_SLACK: Duration = Duration::from_secs(60);

/// How the load generator gets its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSource {
    /// Embedded gateway: `POST /api/dev/login` per user, then `Authorization: Bearer`.
    DevLogin,
    /// Distributed gateways: `session:{userId}` written to Redis, HS256 tokens minted here.
    Minted {
        redis_url: String,
        jwt_secret: String,
    },
    /// The bare ceiling server: no authentication, guilds travel in the query string.
    Open,
}

/// Where the ceiling scenario's bare server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeilingMode {
    /// Start it inside this process (own runtime threads) and drive it.
    InProcess,
    /// Only serve on this address until the timeout; drive it from another process.
    ServeOnly(SocketAddr),
    /// Drive an already running ceiling server at the configured targets.
    External,
}

/// How many clients, in which guilds, sending how much.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadShape {
    pub clients: usize,
    pub guilds: usize,
    pub guilds_per_client: usize,
    /// Clients that also send (fanout, ceiling) or extra sending clients (storm).
    pub senders: usize,
    /// Total messages per second over all senders (open loop).
    pub rate: f64,
    /// Length of each message text.
    pub message_bytes: usize,
    /// Longest wait after the last send for outstanding deliveries.
    pub drain: Duration,
}

impl Default for LoadShape {
    fn default() -> Self {
        LoadShape {
            clients: 100,
            guilds: 10,
            guilds_per_client: 1,
            senders: 10,
            rate: 100.0,
            message_bytes: 100,
            drain: Duration::from_secs(5),
        }
    }
}

/// The scenario and its load.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    Idle(LoadShape),
    Fanout(LoadShape),
    Storm(LoadShape),
    Ceiling {
        shape: LoadShape,
        mode: CeilingMode,
    },
    /// The fanout load without, then with, abusive clients (`scenarios/abuse.rs`).
    Abuse(LoadShape),
    /// Only the abusive clients, as a process of their own (`scenarios/abusers.rs`); the
    /// shape is unused. With `stop_on_stdin_eof` they also stop when stdin closes.
    Abusers {
        shape: LoadShape,
        stop_on_stdin_eof: bool,
    },
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Idle(_) => "idle",
            Scenario::Fanout(_) => "fanout",
            Scenario::Storm(_) => "storm",
            Scenario::Ceiling { .. } => "ceiling",
            Scenario::Abuse(_) => "abuse",
            Scenario::Abusers { .. } => "abusers",
        }
    }

    pub fn shape(&self) -> &LoadShape {
        match self {
            Scenario::Idle(s) | Scenario::Fanout(s) | Scenario::Storm(s) | Scenario::Abuse(s) => s,
            Scenario::Ceiling { shape, .. } | Scenario::Abusers { shape, .. } => shape,
        }
    }

    fn sends(&self) -> bool {
        !matches!(self, Scenario::Idle(_))
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `ws://host:port/path` URLs; clients are spread round-robin over them.
    pub targets: Vec<String>,
    pub encoding: Encoding,
    /// `/ws` frames, or Socket.IO (`--protocol socketio`, see [`crate::socketio`]).
    pub protocol: crate::socketio::Protocol,
    /// Local addresses client sockets bind to; empty means 127.0.0.1–.4 for loopback targets.
    pub source_addrs: Vec<IpAddr>,
    pub allow_remote: bool,
    pub users: UserSource,
    pub warmup: Duration,
    pub duration: Duration,
    /// Hard cap on the whole run; `None` derives one from the timing.
    pub timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// New connections per second while ramping up.
    pub ramp_per_sec: f64,
    pub watch: Vec<WatchTarget>,
    pub progress: bool,
    pub scenario: Scenario,
}

impl RunConfig {
    /// A run of `scenario` with defaults for everything else (no targets, dev login, 1 s
    /// warm-up, 10 s measured, no progress bar).
    pub fn new(scenario: Scenario) -> Self {
        RunConfig {
            targets: Vec::new(),
            encoding: Encoding::Json,
            protocol: crate::socketio::Protocol::Ws,
            source_addrs: Vec::new(),
            allow_remote: false,
            users: UserSource::DevLogin,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            ramp_per_sec: 2000.0,
            watch: Vec::new(),
            progress: false,
            scenario,
        }
    }

    /// The hard time limit in force.
    pub fn effective_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or_else(|| self.estimated_run_time() + DEFAULT_TIMEOUT_SLACK)
    }

    /// Ramp-up + warm-up + measured time + drain.
    pub fn estimated_run_time(&self) -> Duration {
        let shape = self.scenario.shape();
        let ramp = Duration::from_secs_f64(shape.clients as f64 / self.ramp_per_sec.max(1e-9));
        let drain = if self.scenario.sends() {
            shape.drain
        } else {
            Duration::ZERO
        };
        let once = ramp + self.warmup + self.duration + drain;
        // abuse: the fanout twice (without, then with the abusers).
        if let Scenario::Abuse(_) = self.scenario {
            return once * 2;
        }
        once
    }

    /// Open files the run needs in this process.
    pub fn files_needed(&self) -> u64 {
        let shape = self.scenario.shape();
        let mut sockets = shape.clients as u64;
        if let Scenario::Storm(_) = self.scenario {
            sockets += shape.senders as u64;
        }
        if let Scenario::Ceiling {
            mode: CeilingMode::InProcess,
            ..
        } = self.scenario
        {
            sockets *= 2;
        }
        sockets + FD_HEADROOM
    }

    /// Whether clients connect to targets (everything but serve-only ceiling and in-process).
    pub fn uses_targets(&self) -> bool {
        !matches!(
            self.scenario,
            Scenario::Ceiling {
                mode: CeilingMode::InProcess | CeilingMode::ServeOnly(_),
                ..
            }
        )
    }

    /// Refuses impossible combinations. `fd_limit` is the open-file limit after raising it.
    pub fn validate(&self, fd_limit: u64) -> Result<(), LoadTestError> {
        self.validate_targets()?;
        self.validate_users()?;
        self.validate_shape()?;
        self.validate_timing()?;
        let needed = self.files_needed();
        if needed > fd_limit {
            return Err(LoadTestError::FileLimit(format!(
                "{} clients need {needed} open files but this process may open only {fd_limit}; \
                 split the load over several loadtest processes",
                self.scenario.shape().clients
            )));
        }
        Ok(())
    }

    fn validate_targets(&self) -> Result<(), LoadTestError> {
        if !self.uses_targets() {
            return Ok(());
        }
        if self.targets.is_empty() {
            return Err(LoadTestError::config(
                "no --target given (e.g. --target ws://127.0.0.1:8080/ws)",
            ));
        }
        for raw in &self.targets {
            let target = Target::parse(raw).map_err(LoadTestError::Config)?;
            if !target.is_loopback() && !self.allow_remote {
                return Err(LoadTestError::config(format!(
                    "target {raw} is not a loopback address; pass --allow-remote to load a remote host"
                )));
            }
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), LoadTestError> {
        let ceiling = matches!(self.scenario, Scenario::Ceiling { .. });
        match &self.users {
            UserSource::Open if !ceiling => Err(LoadTestError::config(
                "unauthenticated clients only work against the ceiling server",
            )),
            UserSource::Minted { jwt_secret, .. } if jwt_secret.is_empty() => Err(
                LoadTestError::config("--jwt-secret must not be empty with --redis-url"),
            ),
            _ => Ok(()),
        }
    }

    fn validate_shape(&self) -> Result<(), LoadTestError> {
        let s = self.scenario.shape();
        let fail = |m: String| Err(LoadTestError::Config(m));
        if s.clients == 0 {
            return fail("--clients must be at least 1".into());
        }
        if s.guilds == 0 {
            return fail("--guilds must be at least 1".into());
        }
        if s.guilds_per_client == 0 || s.guilds_per_client > s.guilds {
            return fail(format!(
                "--guilds-per-client {} must be between 1 and --guilds {}",
                s.guilds_per_client, s.guilds
            ));
        }
        if !(self.ramp_per_sec.is_finite() && self.ramp_per_sec > 0.0) {
            return fail("--ramp must be a positive number of connections per second".into());
        }
        if !self.scenario.sends() {
            return Ok(());
        }
        if s.senders == 0 {
            return fail("--senders must be at least 1".into());
        }
        if s.senders > s.clients && !matches!(self.scenario, Scenario::Storm(_)) {
            return fail(format!(
                "--senders {} is more than --clients {}: senders are chosen among the clients",
                s.senders, s.clients
            ));
        }
        if !(s.rate.is_finite() && s.rate > 0.0) {
            return fail("--rate must be a positive number of messages per second".into());
        }
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&s.message_bytes) {
            return fail(format!(
                "--message-bytes must be between {MIN_MESSAGE_BYTES} and {MAX_MESSAGE_BYTES}"
            ));
        }
        Ok(())
    }

    fn validate_timing(&self) -> Result<(), LoadTestError> {
        if self.duration.is_zero() {
            return Err(LoadTestError::config("--duration must be more than 0"));
        }
        if self.connect_timeout.is_zero() {
            return Err(LoadTestError::config(
                "--connect-timeout must be more than 0",
            ));
        }
        let needed = self.estimated_run_time();
        match self.timeout {
            Some(cap) if cap < needed => Err(LoadTestError::config(format!(
                "--timeout {cap:?} is shorter than the run needs (~{needed:?}: ramp + warm-up + duration + drain)"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fanout(shape: LoadShape) -> RunConfig {
        RunConfig {
            targets: vec!["ws://127.0.0.1:8080/ws".into()],
            ..RunConfig::new(Scenario::Fanout(shape))
        }
    }

    fn refusal(config: &RunConfig) -> String {
        config
            .validate(20_000)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn impossible_combinations_are_refused() {
        let base = LoadShape::default();
        assert!(fanout(base.clone()).validate(20_000).is_ok());
        let more_senders = LoadShape {
            senders: 200,
            ..base.clone()
        };
        assert!(
            refusal(&fanout(more_senders)).contains("--senders 200 is more than --clients 100")
        );
        let too_many_guilds = LoadShape {
            guilds_per_client: 11,
            ..base.clone()
        };
        assert!(refusal(&fanout(too_many_guilds)).contains("--guilds-per-client"));
        assert!(
            refusal(&fanout(LoadShape {
                rate: 0.0,
                ..base.clone()
            }))
            .contains("--rate")
        );
        let huge = LoadShape {
            clients: 30_000,
            senders: 1,
            ..base.clone()
        };
        assert!(refusal(&fanout(huge)).contains("30000 clients need 30064 open files"));
        let remote = RunConfig {
            targets: vec!["ws://10.0.0.8:8080/ws".into()],
            ..fanout(base.clone())
        };
        assert!(refusal(&remote).contains("--allow-remote"));
        assert!(
            RunConfig {
                allow_remote: true,
                ..remote
            }
            .validate(20_000)
            .is_ok()
        );
        let short = RunConfig {
            timeout: Some(Duration::from_secs(1)),
            ..fanout(base.clone())
        };
        assert!(refusal(&short).contains("--timeout"));
        let no_target = RunConfig::new(Scenario::Idle(base));
        assert!(refusal(&no_target).contains("--target"));
    }

    #[test]
    fn in_process_ceiling_needs_no_target_and_twice_the_files() {
        let config = RunConfig {
            users: UserSource::Open,
            ..RunConfig::new(Scenario::Ceiling {
                shape: LoadShape::default(),
                mode: CeilingMode::InProcess,
            })
        };
        assert!(config.validate(20_000).is_ok());
        assert_eq!(config.files_needed(), 2 * 100 + FD_HEADROOM);
    }
}
