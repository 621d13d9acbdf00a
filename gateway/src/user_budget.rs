//! Per-user budgets for the requests a signed-in member can repeat cheaply but the gateway pays
//! for: WebSocket handshakes (session lookup, connection lease, subscriptions, `hello`),
//! `resume` frames (replays; each connection's `RESUME_FRAMES_PER_MIN` starts afresh on every
//! new connection, this one does not) and history pages (`GET /api/guilds/{id}/messages`, up
//! to `MAX_SCANNED_PER_PAGE` reads each). Over budget a resume is answered `rate_limited`.
//! One GCRA budget per user and kind in the shared [`RateLimiter`] (Redis in distributed mode,
//! so it holds across gateways; memory in embedded mode), like the send limit
//! (`send_limit.rs`). Over budget: 429 `rate_limited` with `Retry-After`, before the work.
//!
//! The per-client-address handshake limit (`admission.rs`) stays in front: it needs no token
//! and no I/O. This one is checked once the token is verified, and before the node's shared
//! handshake rate and in-flight places, so one user's reconnect loop spends only its own budget.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::store::rate_limit::{Quota, RateLimiter};
use clap::Args;
use prometheus_client::registry::Registry;

use crate::send_limit::{Refusals, SendRefusal, hit_budget};
use crate::state::AppState;

/// The `--help` heading of these settings.
const HEADING: &str = "Per-user request budgets";

/// How often one user may open a WebSocket and read a history page, whatever the gateway.
#[derive(Debug, Clone, Args)]
pub struct UserBudgetArgs {
    /// WebSocket handshakes (`/ws` and Socket.IO CONNECT) one user may start per minute across
    /// every gateway, refilled evenly (0: no limit); beyond it the handshake is refused with
    /// 429 `rate_limited` and Retry-After.
    #[arg(long, env = "USER_HANDSHAKES_PER_MIN", help_heading = HEADING, default_value_t = 60)]
    pub user_handshakes_per_min: u32,
    /// Handshakes one user may start at once above that rate (at least
    /// `MAX_CONNECTIONS_PER_USER`, so a user's every tab can reconnect after a drain).
    #[arg(long, env = "USER_HANDSHAKE_BURST", help_heading = HEADING, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_handshake_burst: u32,
    /// History pages (`GET /api/guilds/{id}/messages`, `GET /api/chat/{id}/history`) one user
    /// may read per minute across every gateway, as a burst of this many refilled evenly over
    /// the minute (0: no limit); beyond it 429 `rate_limited` with Retry-After.
    #[arg(long, env = "USER_HISTORY_REQUESTS_PER_MIN", help_heading = HEADING, default_value_t = 120)]
    pub user_history_requests_per_min: u32,
    /// `resume` frames one user may send per minute across every connection and gateway, as
    /// a burst of this many refilled evenly over the minute (0: no limit), besides each
    /// connection's own `RESUME_FRAMES_PER_MIN`; beyond it the frame is answered `rate_limited`.
    #[arg(long, env = "USER_RESUMES_PER_MIN", help_heading = HEADING, default_value_t = 30)]
    pub user_resumes_per_min: u32,
    /// A handshake or history page refused by its budget is answered after this pause (at
    /// most its Retry-After; 0: at once), so a client that ignores Retry-After and loops is
    /// slowed to a few requests a second instead of costing the gateway a worker thread.
    #[arg(long, env = "REFUSAL_PAUSE_MS", help_heading = HEADING, default_value_t = 250, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub refusal_pause_ms: u64,
}

/// What a budget is spent on; also the key's prefix and the metric's `budget` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Handshake,
    History,
    Resume,
}

impl Budget {
    fn as_str(self) -> &'static str {
        match self {
            Budget::Handshake => "handshake",
            Budget::History => "history",
            Budget::Resume => "resume",
        }
    }

    /// The limiter key of `user_id`'s budget.
    fn key(self, user_id: &str) -> String {
        format!("ratelimit:{}:user:{user_id}", self.as_str())
    }
}

/// The limiter and the quotas, held in the gateway's state.
pub struct UserBudgets {
    limiter: Arc<dyn RateLimiter>,
    handshakes: Option<Quota>,
    history: Option<Quota>,
    resumes: Option<Quota>,
    refusal_pause: Duration,
    /// `chat_gateway_user_budget_refusals_total{budget}`.
    refusals: Refusals,
}

impl UserBudgets {
    pub fn new(args: &UserBudgetArgs, limiter: Arc<dyn RateLimiter>) -> Self {
        let per_minute = |n: u32| (n > 0).then(|| Quota::per_minute(n));
        let handshakes = (args.user_handshakes_per_min > 0).then(|| {
            let burst = args.user_handshake_burst.max(1);
            let secs = 60.0 * f64::from(burst) / f64::from(args.user_handshakes_per_min);
            Quota::new(burst, Duration::from_secs_f64(secs))
        });
        UserBudgets {
            limiter,
            handshakes,
            history: per_minute(args.user_history_requests_per_min),
            resumes: per_minute(args.user_resumes_per_min),
            refusal_pause: Duration::from_millis(args.refusal_pause_ms),
            refusals: Refusals::default(),
        }
    }

    /// Registers the refusal counter (as `chat_gateway_user_budget_refusals_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("chat_gateway").register(
            "user_budget_refusals",
            "Requests refused by the per-user budgets, by budget (handshake, history, resume)",
            self.refusals.clone(),
        );
    }

    /// Counts one request of `budget` by `user_id`. When the limiter cannot be reached the
    /// request goes ahead (logged): the per-address and node limits still hold.
    pub async fn spend(&self, budget: Budget, user_id: &str) -> Result<(), SendRefusal> {
        let quota = match budget {
            Budget::Handshake => self.handshakes,
            Budget::History => self.history,
            Budget::Resume => self.resumes,
        };
        let Some(quota) = quota else {
            return Ok(());
        };
        let key = budget.key(user_id);
        let spent = hit_budget(
            self.limiter.as_ref(),
            &self.refusals,
            &key,
            quota,
            budget.as_str(),
        )
        .await;
        if let Err(refusal) = &spent
            && budget != Budget::Resume
        {
            tokio::time::sleep(self.refusal_pause.min(refusal.retry_after)).await;
        }
        spent
    }
}

/// The one call a handshake or history path makes before its work.
pub async fn spend(state: &AppState, budget: Budget, user_id: &str) -> Result<(), SendRefusal> {
    state.user_budgets.spend(budget, user_id).await
}

#[cfg(test)]
mod tests {
    use chat_shared::store::rate_limit::MemoryRateLimiter;
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: UserBudgetArgs,
    }

    fn budgets(flags: &[&str]) -> UserBudgets {
        let cli = Cli::parse_from([&["gateway"], flags].concat());
        UserBudgets::new(&cli.args, Arc::new(MemoryRateLimiter::new()))
    }

    #[tokio::test]
    async fn each_budget_is_per_user_and_per_kind() {
        let budgets = budgets(&[
            "--user-handshakes-per-min",
            "2",
            "--user-handshake-burst",
            "2",
            "--user-history-requests-per-min",
            "3",
            "--user-resumes-per-min",
            "2",
        ]);
        let cases = [
            (Budget::Handshake, 2),
            (Budget::History, 3),
            (Budget::Resume, 2),
        ];
        for (budget, allowed) in cases {
            for _ in 0..allowed {
                budgets.spend(budget, "u1").await.expect("within the burst");
            }
            let refusal = budgets.spend(budget, "u1").await.expect_err("over");
            // One hit per 60 s / n: the next one is 20–30 s away.
            assert!(
                (20..=30).contains(&refusal.retry_after_secs()),
                "{budget:?}"
            );
            budgets.spend(budget, "u2").await.expect("another user");
        }
    }

    #[tokio::test]
    async fn a_refused_handshake_or_page_waits_the_pause_a_resume_does_not() {
        let budgets = budgets(&[
            "--user-handshake-burst",
            "1",
            "--user-history-requests-per-min",
            "1",
            "--user-resumes-per-min",
            "1",
            "--refusal-pause-ms",
            "150",
        ]);
        // (budget, paused)
        for (budget, paused) in [
            (Budget::Handshake, true),
            (Budget::History, true),
            (Budget::Resume, false),
        ] {
            budgets.spend(budget, "u1").await.expect("within the burst");
            let started = std::time::Instant::now();
            budgets.spend(budget, "u1").await.expect_err("over");
            let waited = started.elapsed();
            assert_eq!(
                waited >= Duration::from_millis(150),
                paused,
                "{budget:?}: {waited:?}"
            );
        }
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        let budgets = budgets(&[
            "--user-handshakes-per-min",
            "0",
            "--user-history-requests-per-min",
            "0",
            "--user-resumes-per-min",
            "0",
        ]);
        for _ in 0..1000 {
            budgets.spend(Budget::Handshake, "u1").await.expect("off");
            budgets.spend(Budget::History, "u1").await.expect("off");
            budgets.spend(Budget::Resume, "u1").await.expect("off");
        }
    }

    #[test]
    fn defaults_and_keys() {
        let cli = Cli::parse_from(["gateway"]);
        assert_eq!(cli.args.user_handshakes_per_min, 60);
        let budgets = UserBudgets::new(&cli.args, Arc::new(MemoryRateLimiter::new()));
        assert_eq!(
            budgets.handshakes,
            Some(Quota::new(20, Duration::from_secs(20))),
            "a burst of 20, then one a second"
        );
        assert_eq!(cli.args.user_history_requests_per_min, 120);
        assert_eq!(cli.args.user_resumes_per_min, 30);
        assert_eq!(cli.args.refusal_pause_ms, 250);
        assert_eq!(Budget::History.key("u1"), "ratelimit:history:user:u1");
        assert_eq!(Budget::Handshake.key("u1"), "ratelimit:handshake:user:u1");
    }
}
