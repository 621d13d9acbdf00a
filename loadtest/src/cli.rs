//! The command line: global options (targets, users, timing, watching, output) and one
//! subcommand per scenario with its load shape. Turns into a [`loadtest::RunConfig`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chat_shared::protocol::codec::Encoding;
use clap::{Args, Parser, Subcommand, ValueEnum};
use loadtest::watch::WatchTarget;
use loadtest::{CeilingMode, LoadShape, RunConfig, Scenario, UserSource};

/// Load-test the chat gateways (or the bare socket-stack ceiling) with real WebSocket clients.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EncodingArg {
    Json,
    Msgpack,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Gateway WebSocket URL; repeat to spread clients round-robin over several gateways.
    #[arg(long = "target", global = true, value_name = "URL")]
    pub targets: Vec<String>,
    /// Frame encoding.
    #[arg(long, global = true, value_enum, default_value = "json")]
    pub encoding: EncodingArg,
    /// Wire protocol: `ws` (the gateway's frames) or `socketio` (Socket.IO v5 over Engine.IO
    /// v4 WebSocket; targets `ws://host:port/socket.io/`; JSON only).
    #[arg(long, global = true, value_enum, default_value = "ws")]
    pub protocol: loadtest::socketio::Protocol,
    /// Local addresses to bind client sockets to, comma-separated (default 127.0.0.1-.4
    /// for loopback targets).
    #[arg(long, global = true, value_delimiter = ',', value_name = "IP,IP")]
    pub source_addrs: Vec<IpAddr>,
    /// Allow targets that are not loopback addresses.
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// Distributed target: write sessions to this Redis (needs --jwt-secret).
    #[arg(long, global = true, requires = "jwt_secret", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Distributed target: HS256 secret to mint tokens with (needs --redis-url).
    #[arg(long, global = true, requires = "redis_url", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Measured time (e.g. 30s, 500ms, 2m).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time before the measured window (messages sent then are not measured).
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Hard cap on the whole run (default: the run's estimated length + 60s).
    #[arg(long, global = true, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Time allowed for one connection attempt (TCP + handshake + hello).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// New connections per second while ramping up.
    #[arg(long, global = true, default_value_t = 2000.0)]
    pub ramp: f64,
    /// Server process to measure (CPU, RSS); repeatable.
    #[arg(long = "watch-pid", global = true, value_name = "PID")]
    pub watch_pids: Vec<u32>,
    /// Measure every process with this name (e.g. gateway); repeatable.
    #[arg(long = "watch-name", global = true, value_name = "NAME")]
    pub watch_names: Vec<String>,
    /// Write the report as JSON to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<String>,
    /// Draw latency over time and the latency CDF to this SVG file.
    #[arg(long, global = true, value_name = "FILE")]
    pub plot: Option<String>,
    /// No progress bar.
    #[arg(long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open N connections, hold them, report connect rate, handshake latency, memory.
    Idle(IdleArgs),
    /// N clients in G guilds, S senders at R msg/s open-loop; delivery ratio and latency.
    Fanout(ShapeArgs),
    /// Drop every connection at once; measure reconnect + resume, lost and duplicates.
    Storm(ShapeArgs),
    /// The fanout load against the bare broadcast server (the socket stack's ceiling).
    Ceiling(CeilingArgs),
    /// The fanout load without, then with, 20 abusive clients flooding sends, resumes,
    /// handshakes and history; p99 and delivery ratio of both, and the watched RSS.
    Abuse(ShapeArgs),
    /// Only the 20 abusive clients of `abuse`, for --duration (the process `abuse` starts for
    /// its abused run; or run it beside any other load by hand). Prints what they did.
    Abusers(AbusersArgs),
}

#[derive(Debug, Args)]
pub struct AbusersArgs {
    /// Also stop when stdin reaches its end (how `abuse` stops its abusers' process).
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub guilds: u64,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub guilds_per_client: u64,
}

#[derive(Debug, Args)]
pub struct ShapeArgs {
    #[command(flatten)]
    pub idle: IdleArgs,
    /// Sending clients (fanout, ceiling: chosen among the clients; storm: extra clients).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub senders: u64,
    /// Total messages per second over all senders.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Length of each message text.
    #[arg(long, default_value_t = 100)]
    pub message_bytes: usize,
    /// Longest wait after the last send for outstanding deliveries.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
}

#[derive(Debug, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Only serve the bare server on this address (until --timeout or Ctrl-C), to be driven
    /// by another `loadtest ceiling --target …` process and watched with --watch-pid.
    #[arg(long, value_name = "ADDR")]
    pub ceiling_listen: Option<SocketAddr>,
}

/// Parses `500ms`, `10s`, `2m`, `1h` or a plain number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => raw.split_at(at),
        None => (raw, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit in {raw:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{raw:?}: {e}"))
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl ShapeArgs {
    fn shape(&self) -> LoadShape {
        LoadShape {
            senders: to_usize(self.senders),
            rate: self.rate,
            message_bytes: self.message_bytes,
            drain: self.drain,
            ..self.idle.shape()
        }
    }
}

impl IdleArgs {
    fn shape(&self) -> LoadShape {
        LoadShape {
            clients: to_usize(self.clients),
            guilds: to_usize(self.guilds),
            guilds_per_client: to_usize(self.guilds_per_client),
            ..LoadShape::default()
        }
    }
}

impl Cli {
    /// The run this command line asks for.
    pub fn run_config(&self) -> RunConfig {
        let g = &self.global;
        let scenario = match &self.scenario {
            Command::Idle(a) => Scenario::Idle(a.shape()),
            Command::Fanout(a) => Scenario::Fanout(a.shape()),
            Command::Storm(a) => Scenario::Storm(a.shape()),
            Command::Abuse(a) => Scenario::Abuse(a.shape()),
            Command::Abusers(a) => Scenario::Abusers {
                shape: LoadShape::default(),
                stop_on_stdin_eof: a.stop_on_stdin_eof,
            },
            Command::Ceiling(a) => Scenario::Ceiling {
                shape: a.shape.shape(),
                mode: match (a.ceiling_listen, g.targets.is_empty()) {
                    (Some(addr), _) => CeilingMode::ServeOnly(addr),
                    (None, true) => CeilingMode::InProcess,
                    (None, false) => CeilingMode::External,
                },
            },
        };
        let users = match (&scenario, &g.redis_url, &g.jwt_secret) {
            (Scenario::Ceiling { .. }, _, _) => UserSource::Open,
            (_, Some(redis_url), Some(jwt_secret)) => UserSource::Minted {
                redis_url: redis_url.clone(),
                jwt_secret: jwt_secret.clone(),
            },
            _ => UserSource::DevLogin,
        };
        let watch = g
            .watch_pids
            .iter()
            .map(|p| WatchTarget::Pid(*p))
            .chain(g.watch_names.iter().map(|n| WatchTarget::Name(n.clone())))
            .collect();
        RunConfig {
            targets: g.targets.clone(),
            encoding: match g.encoding {
                EncodingArg::Json => Encoding::Json,
                EncodingArg::Msgpack => Encoding::MsgPack,
            },
            protocol: g.protocol,
            source_addrs: g.source_addrs.clone(),
            allow_remote: g.allow_remote,
            users,
            warmup: g.warmup,
            duration: g.duration,
            timeout: g.timeout,
            connect_timeout: g.connect_timeout,
            ramp_per_sec: g.ramp,
            watch,
            progress: !g.quiet,
            scenario,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn flags_become_a_config() {
        let cli = Cli::parse_from([
            "loadtest",
            "fanout",
            "--clients",
            "50",
            "--senders",
            "5",
            "--rate",
            "20",
            "--target",
            "ws://127.0.0.1:1/ws",
            "--encoding",
            "msgpack",
            "--duration",
            "3s",
        ]);
        let config = cli.run_config();
        assert_eq!(config.encoding, Encoding::MsgPack);
        assert_eq!(config.scenario.shape().clients, 50);
        assert_eq!(config.users, UserSource::DevLogin);
        assert!(matches!(
            Cli::parse_from(["loadtest", "ceiling"])
                .run_config()
                .scenario,
            Scenario::Ceiling {
                mode: CeilingMode::InProcess,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["loadtest", "idle", "--clients", "0"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "idle", "--redis-url", "redis://x"]).is_err());
    }
}
