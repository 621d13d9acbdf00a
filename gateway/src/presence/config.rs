//! The presence settings: each a flag and an environment variable, shown in `--help`.

use std::time::Duration;

use clap::Args;

/// The `--help` heading of the presence settings.
const PRESENCE: &str = "Presence";

#[derive(Debug, Clone, Args)]
pub struct PresenceConfig {
    /// Presence on (`true`) or off (`false`: nothing tracked or published, every `presence`
    /// snapshot and `GET /api/guilds/{guildId}/presence` say `available:false`); typing
    /// indicators work either way.
    #[arg(long, env = "PRESENCE_ENABLED", help_heading = PRESENCE, default_value_t = true, action = clap::ArgAction::Set)]
    pub presence_enabled: bool,
    /// How long a user whose last connection to a guild closed still counts as online there
    /// (a page reload does not flap).
    #[arg(long, env = "PRESENCE_LINGER_MS", help_heading = PRESENCE, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub presence_linger_ms: u64,
    /// How long the users of a gateway that stopped sending heartbeats (killed, cut off) stay
    /// online at the other gateways; heartbeats go every third of it.
    #[arg(long, env = "PRESENCE_TTL_MS", help_heading = PRESENCE, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(300..=3_600_000))]
    pub presence_ttl_ms: u64,
    /// Users listed at most in a `presence` snapshot (with the exact count beside); guilds with
    /// more online get their diffs coalesced to one per second.
    #[arg(long, env = "PRESENCE_MAX_LISTED", help_heading = PRESENCE, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub presence_max_listed: u32,
}

impl PresenceConfig {
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.presence_linger_ms)
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.presence_ttl_ms)
    }

    pub fn heartbeat_every(&self) -> Duration {
        self.ttl() / 3
    }

    pub fn max_listed(&self) -> usize {
        self.presence_max_listed as usize
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::PresenceConfig;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        presence: PresenceConfig,
    }

    #[test]
    fn presence_is_on_unless_switched_off() {
        let table: [(&[&str], bool); 4] = [
            (&[], true),
            (&["--presence-enabled", "true"], true),
            (&["--presence-enabled", "false"], false),
            (&["--presence-enabled=false"], false),
        ];
        for (args, enabled) in table {
            let cli = Cli::parse_from(std::iter::once("gateway").chain(args.iter().copied()));
            assert_eq!(cli.presence.presence_enabled, enabled, "{args:?}");
        }
        assert!(Cli::try_parse_from(["gateway", "--presence-enabled", "maybe"]).is_err());
    }
}
