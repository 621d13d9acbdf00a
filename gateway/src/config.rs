//! The gateway's settings: every one a flag and an environment variable, shown in `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use chat_shared::bus::nats::NatsConfig;
use chat_shared::config::{AuthConfig, CommonConfig, LimitsConfig};
use clap::{Args, Parser};

/// The chat gateway. Without NATS_URL and REDIS_URL it runs the whole chat in one process
/// (embedded mode); with both it is one stateless gateway of a distributed deployment.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about)]
pub struct GatewayConfig {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
    /// Address of the ops listener: `/metrics`, `/healthz` and `/readyz` (the public port keeps
    /// only `/healthz` and `/readyz`, never `/metrics`). Unset: 127.0.0.1:9090, or a free
    /// loopback port (logged) when that one is taken; containers set 0.0.0.0:9090. A port set
    /// here that cannot be bound stops the start.
    #[arg(long, env = "OPS_LISTEN_ADDR")]
    pub ops_listen_addr: Option<SocketAddr>,
    /// Comma-separated browser origins allowed to open /ws; `*` allows any. Unset: only the
    /// same origin (the Origin's host and port equal the request's Host), refused with 403
    /// `origin_not_allowed` otherwise. Requests without an Origin header (non-browser clients)
    /// always pass.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Enables POST /api/dev/login, which lets anyone mint a session with any role. Default: on
    /// only in embedded mode with no JWT_SECRET / JWT_PUBLIC_KEY_FILE (the secret is generated
    /// and ends with the process); whenever a secret or key is configured it must be asked for.
    /// Refused with JWT_PUBLIC_KEY_FILE (such a gateway cannot mint tokens).
    #[arg(long, env = "DEV_LOGIN")]
    pub dev_login: Option<bool>,
    /// How often, in milliseconds, the sessions of connected users are re-read from the store
    /// (one MGET): a deleted or `"revoked": true` session closes the user's sockets with 4001,
    /// a rewritten one reloads their guilds. The bound on revocation reaching open sockets.
    #[arg(long, env = "SESSION_RECHECK_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=30_000))]
    pub session_recheck_ms: u64,
    /// Sessions dev login keeps at most; beyond it the oldest is deleted (those older than a
    /// dev-login token's 12 h go too).
    #[arg(long, env = "DEV_LOGIN_MAX_SESSIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub dev_login_max_sessions: u32,
    /// Largest inbound WebSocket message in bytes (after decompression); larger closes with 1009.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(256..=16_777_216))]
    pub max_frame_bytes: u32,
    /// Time a client has to send a request's headers, in milliseconds; a slower one (a
    /// slowloris) is disconnected.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,
    /// Server ping interval in milliseconds; a connection silent for two intervals is closed.
    #[arg(long, env = "HEARTBEAT_MS", default_value_t = 25_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub heartbeat_ms: u64,
    /// Frames queued per connection before it counts as too slow (closed with 4009).
    #[arg(long, env = "OUTBOUND_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(8..=1_000_000))]
    pub outbound_queue: u32,
    /// Sends per second allowed per connection (token bucket refill).
    #[arg(long, env = "SEND_RATE_PER_SEC", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub send_rate_per_sec: u32,
    /// Burst of sends allowed per connection (token bucket size).
    #[arg(long, env = "SEND_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub send_burst: u32,
    /// On SIGTERM, /readyz fails first and the gateway waits this long for the load balancer.
    #[arg(long, env = "SHUTDOWN_READINESS_DELAY_MS", default_value_t = 5_000)]
    pub shutdown_readiness_delay_ms: u64,
    /// Then clients are closed with 1012, spread over this window.
    #[arg(long, env = "SHUTDOWN_CLOSE_WINDOW_MS", default_value_t = 5_000)]
    pub shutdown_close_window_ms: u64,
    #[command(flatten)]
    pub limits: LimitsConfig,
    #[command(flatten)]
    pub connection_limits: ConnectionLimits,
    /// Presence (issue #13).
    #[command(flatten)]
    pub presence: crate::presence::PresenceConfig,
    #[command(flatten)]
    pub send_limits: crate::send_limit::SendLimitArgs,
    /// Per-user handshake and history budgets (issue #14).
    #[command(flatten)]
    pub user_budgets: crate::user_budget::UserBudgetArgs,
    #[command(flatten)]
    pub outbound: crate::ws::limits::OutboundLimits,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    /// The Socket.IO endpoint (`/socket.io/`).
    #[command(flatten)]
    pub socketio: crate::socketio::SocketIoArgs,
    /// The in-process bot of embedded mode.
    #[command(flatten)]
    pub bot: bot_worker::BotArgs,
}

/// The `--help` heading of the connection limits.
const LIMITS: &str = "Connection limits";

/// How many WebSockets a gateway and a user may hold, and how fast a gateway takes new ones.
#[derive(Debug, Clone, Args)]
pub struct ConnectionLimits {
    /// WebSockets this gateway holds at once (0: unlimited); beyond it /ws answers 503
    /// `unavailable`. The default fits a 20,000 open-file limit with room for handshakes in
    /// flight, NATS, Redis and logs.
    #[arg(long, env = "MAX_CONNECTIONS", help_heading = LIMITS, default_value_t = 19_000)]
    pub max_connections: u32,
    /// New WebSocket handshakes per second this gateway accepts (0: unlimited); beyond it /ws
    /// answers 503 `unavailable`. Checked before the token and the session store.
    #[arg(long, env = "MAX_HANDSHAKES_PER_SEC", help_heading = LIMITS, default_value_t = 5_000)]
    pub max_handshakes_per_sec: u32,
    /// Handshakes accepted at once above that rate (token bucket size).
    #[arg(long, env = "HANDSHAKE_BURST", help_heading = LIMITS, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub handshake_burst: u32,
    /// Handshakes this gateway works on at once (token, session and lease lookups; 0:
    /// unlimited); beyond it /ws answers 503 `unavailable` at once. Adapts to what the session
    /// store can answer: in a reconnect storm the excess is refused cheaply instead of queueing
    /// into store timeouts.
    #[arg(long, env = "MAX_HANDSHAKES_IN_FLIGHT", help_heading = LIMITS, default_value_t = 4096)]
    pub max_handshakes_in_flight: u32,
    /// Handshakes per second one client address may start (0: unlimited), counted after the
    /// cheap checks (upgrade headers, token signature, origin); beyond it /ws answers 429
    /// `rate_limited` with Retry-After. The address is the TCP peer, or the forwarded address
    /// when the peer is a trusted proxy.
    #[arg(long, env = "MAX_HANDSHAKES_PER_IP_PER_SEC", help_heading = LIMITS, default_value_t = 100)]
    pub max_handshakes_per_ip_per_sec: u32,
    /// Handshakes one client address may start at once above that rate.
    #[arg(long, env = "HANDSHAKE_BURST_PER_IP", help_heading = LIMITS, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub handshake_burst_per_ip: u32,
    /// Comma-separated proxies (CIDR networks or addresses) whose `X-Forwarded-For` names the
    /// client; from any other peer the header is ignored. Unset: the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", help_heading = LIMITS, value_delimiter = ',')]
    pub trusted_proxies: Vec<crate::client_ip::TrustedNet>,
    /// WebSockets one user may hold across every gateway (0: unlimited); beyond it /ws answers
    /// 429 `too_many_connections`. Counted in the session store (Redis in distributed mode).
    #[arg(long, env = "MAX_CONNECTIONS_PER_USER", help_heading = LIMITS, default_value_t = 20)]
    pub max_connections_per_user: u32,
    /// How long a connection's slot in that count outlives its gateway: renewed every third of
    /// it while the connection is open, so a crashed gateway's slots come back within it.
    #[arg(long, env = "CONNECTION_LEASE_MS", help_heading = LIMITS, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    pub connection_lease_ms: u64,
}

impl ConnectionLimits {
    pub fn connection_lease(&self) -> Duration {
        Duration::from_millis(self.connection_lease_ms)
    }
}

impl GatewayConfig {
    /// Embedded mode: neither NATS nor Redis configured.
    pub fn embedded(&self) -> bool {
        self.common.nats_url.is_none() && self.common.redis_url.is_none()
    }

    /// Whether `POST /api/dev/login` is mounted: when asked for, or by default in embedded mode
    /// with a generated secret (no JWT_SECRET or key configured).
    pub fn dev_login_enabled(&self) -> bool {
        self.dev_login
            .unwrap_or_else(|| self.embedded() && !self.jwt_key_configured())
    }

    /// Whether a JWT secret or public key is configured (tokens outlive this process).
    pub fn jwt_key_configured(&self) -> bool {
        self.auth.jwt_secret.is_some() || self.auth.uses_public_key()
    }

    /// Settings that contradict each other, refused at start.
    pub fn check(&self) -> Result<(), String> {
        if self.dev_login_enabled() && self.auth.uses_public_key() {
            return Err(
                "DEV_LOGIN cannot be on with JWT_PUBLIC_KEY_FILE: an RS256/ES256 gateway \
                        cannot mint the tokens dev login hands out"
                    .to_owned(),
            );
        }
        Ok(())
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// Settings for tests: loopback, defaults otherwise.
    pub fn for_tests() -> Self {
        GatewayConfig::parse_from([
            "gateway",
            "--listen-addr",
            "127.0.0.1:0",
            "--ops-listen-addr",
            "127.0.0.1:0",
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> GatewayConfig {
        GatewayConfig::parse_from(std::iter::once("gateway").chain(args.iter().copied()))
    }

    #[test]
    fn dev_login_is_opt_in_whenever_a_secret_or_key_is_configured() {
        const SECRET: &str = "0123456789abcdef0123456789abcdef";
        let table: [(&[&str], bool); 8] = [
            (&[], true),
            (&["--jwt-secret", SECRET], false),
            (&["--jwt-public-key-file", "/k.pem"], false),
            (
                &["--nats-url", "nats://n", "--redis-url", "redis://r"],
                false,
            ),
            (&["--jwt-secret", SECRET, "--dev-login", "true"], true),
            (&["--dev-login", "false"], false),
            (&["--redis-url", "redis://r", "--dev-login", "true"], true),
            (&["--nats-url", "nats://n"], false),
        ];
        for (args, on) in table {
            assert_eq!(config(args).dev_login_enabled(), on, "{args:?}");
        }
    }

    #[test]
    fn dev_login_with_a_public_key_is_refused_at_start() {
        let rs = ["--jwt-public-key-file", "/k.pem", "--dev-login", "true"];
        assert!(config(&rs).check().is_err());
        assert!(config(&rs[..2]).check().is_ok());
        assert!(config(&[]).check().is_ok());
    }
}
