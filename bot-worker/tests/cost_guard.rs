//! The cost guard: over the per-user or per-guild quota the requester gets `rate_limited` with
//! the request's messageId and the model is not called; the Redis limiter's counters are
//! shared by every limiter on the same server (as by every worker).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bot_worker::{BotConfig, CostGuard};
use chat_shared::protocol::ErrorCode;
use chat_shared::store::rate_limit::{
    Decision, MemoryRateLimiter, Quota, RateLimiter, RedisRateLimiter,
};
use support::chat::{Chat, member, quick_config};
use support::fake_llm::{FakeLlm, answer};

fn guarded(user_per_min: u32, guild_per_min: u32) -> BotConfig {
    BotConfig {
        guard: CostGuard::new(
            Arc::new(MemoryRateLimiter::new()),
            user_per_min,
            guild_per_min,
        ),
        ..quick_config()
    }
}

#[tokio::test]
async fn over_the_user_limit_the_requester_gets_rate_limited_and_no_call_is_made() {
    let llm = FakeLlm::start(vec![], answer("ok")).await;
    let chat = Chat::with_llm(&llm, guarded(2, 100)).await;
    let (ann, bob) = (member("ann"), member("bob"));
    let mut feed = chat.feed("g1").await;
    let mut notices = chat.notices().await;
    for _ in 0..2 {
        let ask = chat.ask(&ann, "g1", "@slimy hi", false).await;
        feed.reply_to(&ask.message_id).await;
    }
    let third = chat.ask(&ann, "g1", "@slimy hi again", false).await;
    let (user, frame) = notices.next().await;
    assert_eq!(user, "ann");
    assert_eq!(frame.code, ErrorCode::RateLimited);
    assert_eq!(frame.message_id.as_deref(), Some(third.message_id.as_str()));
    assert_eq!(llm.calls().len(), 2, "no call for the refused request");

    // Another user still gets answers.
    let other = chat.ask(&bob, "g1", "@slimy hi", false).await;
    feed.reply_to(&other.message_id).await;
    assert_eq!(llm.calls().len(), 3);
    assert_eq!(chat.replies_in_log("g1", &third.message_id).await, 0);
}

#[tokio::test]
async fn over_the_guild_limit_every_member_is_refused() {
    let llm = FakeLlm::start(vec![], answer("ok")).await;
    let chat = Chat::with_llm(&llm, guarded(100, 2)).await;
    let mut feed = chat.feed("g1").await;
    let mut notices = chat.notices().await;
    for name in ["ann", "bob"] {
        let ask = chat.ask(&member(name), "g1", "@slimy hi", false).await;
        feed.reply_to(&ask.message_id).await;
    }
    let refused = chat.ask(&member("cid"), "g1", "@slimy hi", false).await;
    let (user, frame) = notices.next().await;
    assert_eq!((user.as_str(), frame.code), ("cid", ErrorCode::RateLimited));
    assert_eq!(
        frame.message_id.as_deref(),
        Some(refused.message_id.as_str())
    );
    assert_eq!(llm.calls().len(), 2);

    // Another guild has its own quota.
    let mut other_feed = chat.feed("g2").await;
    let elsewhere = chat.ask(&member("cid"), "g2", "@slimy hi", false).await;
    other_feed.reply_to(&elsewhere.message_id).await;
}

#[tokio::test]
async fn redis_counters_are_shared_by_every_limiter() {
    let redis = testkit::RedisServer::start();
    let first = RedisRateLimiter::connect(&redis.url())
        .await
        .expect("first limiter");
    let second = RedisRateLimiter::connect(&redis.url())
        .await
        .expect("second limiter");
    let quota = Quota::per_minute(3);
    let key = "ratelimit:bot:user:ann";
    assert_eq!(first.hit(key, quota).await.unwrap(), Decision::Allowed);
    assert_eq!(second.hit(key, quota).await.unwrap(), Decision::Allowed);
    assert_eq!(first.hit(key, quota).await.unwrap(), Decision::Allowed);
    let Decision::Limited { retry_after } = second.hit(key, quota).await.unwrap() else {
        panic!("the fourth hit within a minute, across both limiters, must be refused");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20),
        "{retry_after:?}"
    );
    assert!(matches!(
        first.hit(key, quota).await.unwrap(),
        Decision::Limited { .. }
    ));
    assert_eq!(
        second.hit("ratelimit:bot:user:bob", quota).await.unwrap(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn redis_counters_refill_evenly() {
    let redis = testkit::RedisServer::start();
    let limiter = RedisRateLimiter::connect(&redis.url())
        .await
        .expect("limiter");
    let quota = Quota::new(2, Duration::from_millis(200));
    assert_eq!(limiter.hit("k", quota).await.unwrap(), Decision::Allowed);
    assert_eq!(limiter.hit("k", quota).await.unwrap(), Decision::Allowed);
    let Decision::Limited { retry_after } = limiter.hit("k", quota).await.unwrap() else {
        panic!("the burst is two");
    };
    tokio::time::sleep(retry_after).await;
    assert_eq!(limiter.hit("k", quota).await.unwrap(), Decision::Allowed);
}

#[tokio::test]
async fn the_guard_counts_in_redis_across_workers() {
    let redis = testkit::RedisServer::start();
    let guard = |limiter: RedisRateLimiter| CostGuard::new(Arc::new(limiter), 1, 100);
    let one = guard(
        RedisRateLimiter::connect(&redis.url())
            .await
            .expect("limiter"),
    );
    let two = guard(
        RedisRateLimiter::connect(&redis.url())
            .await
            .expect("limiter"),
    );
    let request = chat_shared::protocol::ChatMessage {
        guild_id: "g1".into(),
        message_id: "m1".into(),
        admin_only: false,
        from: member("ann"),
        text: "@slimy hi".into(),
        ts: "2026-11-26T23:00:00.000Z".into(),
    };
    assert_eq!(
        one.admit(&request).await.unwrap(),
        bot_worker::CostDecision::Admitted
    );
    assert_eq!(
        two.admit(&request).await.unwrap(),
        bot_worker::CostDecision::UserLimited
    );
}

#[tokio::test]
async fn an_unreachable_redis_fails_at_connect() {
    let port = testkit::free_port();
    let result = RedisRateLimiter::connect(&format!("redis://127.0.0.1:{port}")).await;
    assert!(result.is_err());
}
