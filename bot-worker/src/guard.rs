//! The cost guard: per-user and per-guild limits on bot requests, counted in a
//! [`RateLimiter`] that every worker shares (Redis in distributed mode, memory in embedded
//! mode), checked before any backend is asked.

use std::sync::Arc;

use chat_shared::protocol::ChatMessage;
use chat_shared::store::rate_limit::{
    Decision, MemoryRateLimiter, Quota, RateLimitError, RateLimiter,
};

/// Default bot requests per user per minute.
pub const DEFAULT_USER_RATE_PER_MIN: u32 = 10;
/// Default bot requests per guild per minute.
pub const DEFAULT_GUILD_RATE_PER_MIN: u32 = 60;

/// The cost guard's answer to a bot request: go ahead, or which quota it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostDecision {
    Admitted,
    /// The requester is over their own quota.
    UserLimited,
    /// The guild is over its quota.
    GuildLimited,
}

/// Per-user and per-guild quotas on bot requests.
#[derive(Clone)]
pub struct CostGuard {
    limiter: Arc<dyn RateLimiter>,
    per_user: Quota,
    per_guild: Quota,
}

impl std::fmt::Debug for CostGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CostGuard")
            .field("per_user", &self.per_user)
            .field("per_guild", &self.per_guild)
            .finish_non_exhaustive()
    }
}

impl Default for CostGuard {
    /// The default quotas, counted in this process's memory.
    fn default() -> Self {
        CostGuard::new(
            Arc::new(MemoryRateLimiter::new()),
            DEFAULT_USER_RATE_PER_MIN,
            DEFAULT_GUILD_RATE_PER_MIN,
        )
    }
}

impl CostGuard {
    /// `user_per_min` requests per user and `guild_per_min` per guild, counted in `limiter`.
    pub fn new(limiter: Arc<dyn RateLimiter>, user_per_min: u32, guild_per_min: u32) -> Self {
        CostGuard {
            limiter,
            per_user: Quota::per_minute(user_per_min),
            per_guild: Quota::per_minute(guild_per_min),
        }
    }

    /// Counts the request against its user, then its guild. A request refused by the user's
    /// quota does not use the guild's; one refused by the guild's has used the user's.
    pub async fn admit(&self, request: &ChatMessage) -> Result<CostDecision, RateLimitError> {
        let user_key = format!("ratelimit:bot:user:{}", request.from.id);
        if let Decision::Limited { retry_after } =
            self.limiter.hit(&user_key, self.per_user).await?
        {
            tracing::info!(user = %request.from.id, ?retry_after, "bot request over the user limit");
            return Ok(CostDecision::UserLimited);
        }
        let guild_key = format!("ratelimit:bot:guild:{}", request.guild_id);
        if let Decision::Limited { retry_after } =
            self.limiter.hit(&guild_key, self.per_guild).await?
        {
            tracing::info!(guild = %request.guild_id, ?retry_after, "bot request over the guild limit");
            return Ok(CostDecision::GuildLimited);
        }
        Ok(CostDecision::Admitted)
    }
}
