//! The per-user send limit, across every path a send enters by (socket, HTTP, Socket.IO) and
//! every connection and gateway: one GCRA budget per user in the shared [`RateLimiter`] (Redis
//! in distributed mode, memory in embedded mode), and a separate, smaller one for sends that
//! ask the bot (the paid path). A send over either is refused with `rate_limited` (HTTP 429
//! with `Retry-After`) before it reaches the router.
//!
//! The per-connection token bucket (`SEND_RATE_PER_SEC`, 4008 on flooding) stays in front of
//! this: it costs no I/O and stops one socket on its own.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_shared::protocol::{ErrorCode, ErrorFrame, ServerFrame};
use chat_shared::store::rate_limit::{Decision, Quota, RateLimiter};
use clap::Args;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::state::AppState;

/// The `--help` heading of these settings.
const HEADING: &str = "Per-user send limits";

/// How fast one user may send, whatever the path, connection or gateway.
#[derive(Debug, Clone, Args)]
pub struct SendLimitArgs {
    /// Sends per second one user may make across every connection, path and gateway (0: no
    /// limit); beyond it the send is refused with `rate_limited` (HTTP 429 with Retry-After).
    #[arg(long, env = "USER_SEND_RATE_PER_SEC", help_heading = HEADING, default_value_t = 20)]
    pub user_send_rate_per_sec: u32,
    /// Sends one user may make at once above that rate.
    #[arg(long, env = "USER_SEND_BURST", help_heading = HEADING, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_send_burst: u32,
    /// Sends asking the bot one user may make per minute (0: no limit), counted before the
    /// send reaches the router; the bot worker's own quotas still apply after it.
    #[arg(long, env = "USER_BOT_REQUESTS_PER_MIN", help_heading = HEADING, default_value_t = 20)]
    pub user_bot_requests_per_min: u32,
}

impl SendLimitArgs {
    /// The send budget: a burst of `user_send_burst`, refilled at `user_send_rate_per_sec`.
    fn send_quota(&self) -> Option<Quota> {
        (self.user_send_rate_per_sec > 0).then(|| {
            let burst = self.user_send_burst.max(1);
            let period =
                Duration::from_secs_f64(f64::from(burst) / f64::from(self.user_send_rate_per_sec));
            Quota::new(burst, period)
        })
    }

    fn bot_quota(&self) -> Option<Quota> {
        (self.user_bot_requests_per_min > 0)
            .then(|| Quota::per_minute(self.user_bot_requests_per_min))
    }
}

/// The limiter and the quotas, held in the gateway's state.
pub struct SendLimits {
    limiter: Arc<dyn RateLimiter>,
    sends: Option<Quota>,
    bots: Option<Quota>,
    /// `chat_gateway_user_send_refusals_total{budget}`: sends refused by these limits.
    refusals: Refusals,
}

/// A request refused by a per-user limit (sends here, handshakes and history pages in
/// `user_budget.rs`): 429 `rate_limited` with Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRefusal {
    pub retry_after: Duration,
}

impl SendLimits {
    pub fn new(args: &SendLimitArgs, limiter: Arc<dyn RateLimiter>) -> Self {
        SendLimits {
            limiter,
            sends: args.send_quota(),
            bots: args.bot_quota(),
            refusals: Family::default(),
        }
    }

    /// Registers the refusal counter (as `chat_gateway_user_send_refusals_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("chat_gateway").register(
            "user_send_refusals",
            "Sends refused by the per-user limits, by budget (send, bot)",
            self.refusals.clone(),
        );
    }

    /// Counts one send by `user_id` (and one bot request if it asks the bot). When the limiter
    /// cannot be reached the send goes ahead (logged): the per-connection limit still holds.
    pub async fn check(&self, user_id: &str, request_bot: bool) -> Result<(), SendRefusal> {
        if let Some(quota) = self.sends {
            let key = format!("ratelimit:send:user:{user_id}");
            self.hit(&key, quota, "send").await?;
        }
        if request_bot && let Some(quota) = self.bots {
            let key = format!("ratelimit:send-bot:user:{user_id}");
            self.hit(&key, quota, "bot").await?;
        }
        Ok(())
    }

    async fn hit(&self, key: &str, quota: Quota, budget: &'static str) -> Result<(), SendRefusal> {
        hit_budget(self.limiter.as_ref(), &self.refusals, key, quota, budget).await
    }
}

/// Refusals counted per `budget` label.
pub type Refusals = Family<Vec<(&'static str, &'static str)>, Counter>;

/// Spends one request of a per-user budget in the shared limiter, counting a refusal under
/// `budget`. When the limiter cannot be reached the request goes ahead (logged): the
/// per-connection and per-node limits still hold.
pub async fn hit_budget(
    limiter: &dyn RateLimiter,
    refusals: &Refusals,
    key: &str,
    quota: Quota,
    budget: &'static str,
) -> Result<(), SendRefusal> {
    match limiter.hit(key, quota).await {
        Ok(Decision::Allowed) => Ok(()),
        Ok(Decision::Limited { retry_after }) => {
            refusals.get_or_create(&vec![("budget", budget)]).inc();
            Err(SendRefusal { retry_after })
        }
        Err(error) => {
            tracing::warn!(%error, budget, "per-user limit not checked");
            Ok(())
        }
    }
}

impl SendRefusal {
    /// Retry-After in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }

    /// The socket's answer: `rate_limited` for the send's reference.
    pub fn frame(&self, reference: Option<String>) -> ServerFrame {
        ServerFrame::Error(ErrorFrame::new(ErrorCode::RateLimited, reference))
    }
}

impl IntoResponse for SendRefusal {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": ErrorCode::RateLimited }));
        let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        response
    }
}

/// The one call each send path makes before handing a send to the router.
pub async fn check(state: &AppState, user_id: &str, request_bot: bool) -> Result<(), SendRefusal> {
    state.send_limits.check(user_id, request_bot).await
}

#[cfg(test)]
mod tests {
    use chat_shared::store::rate_limit::MemoryRateLimiter;
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SendLimitArgs,
    }

    fn limits(flags: &[&str]) -> SendLimits {
        let cli = Cli::parse_from([&["gateway"], flags].concat());
        SendLimits::new(&cli.args, Arc::new(MemoryRateLimiter::new()))
    }

    #[tokio::test]
    async fn a_burst_then_refusals_per_user() {
        let limits = limits(&["--user-send-rate-per-sec", "1", "--user-send-burst", "3"]);
        for _ in 0..3 {
            limits.check("u1", false).await.expect("within the burst");
        }
        let refusal = limits.check("u1", false).await.expect_err("over the burst");
        assert_eq!(refusal.retry_after_secs(), 1);
        limits
            .check("u2", false)
            .await
            .expect("another user's budget");
    }

    #[tokio::test]
    async fn bot_requests_have_their_own_smaller_budget() {
        let limits = limits(&["--user-bot-requests-per-min", "2"]);
        limits.check("u1", true).await.expect("first");
        limits.check("u1", true).await.expect("second");
        limits
            .check("u1", true)
            .await
            .expect_err("third bot request in a minute");
        limits
            .check("u1", false)
            .await
            .expect("plain sends still pass");
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        let limits = limits(&[
            "--user-send-rate-per-sec",
            "0",
            "--user-bot-requests-per-min",
            "0",
        ]);
        for _ in 0..1000 {
            limits.check("u1", true).await.expect("unlimited");
        }
    }

    #[test]
    fn the_quota_is_the_burst_over_its_refill_time() {
        let cli = Cli::parse_from(["gateway"]);
        assert_eq!(
            cli.args.send_quota(),
            Some(Quota::new(40, Duration::from_secs(2)))
        );
        assert_eq!(cli.args.bot_quota(), Some(Quota::per_minute(20)));
    }
}
