//! Retries and give-ups against a scripted model server, over the in-memory bus (3 deliveries
//! per job) with the real router: timeouts and 5xx are retried, 429's `Retry-After` is the
//! retry delay, other 4xx are not retried, and after the last attempt only the requester hears
//! `bot_unavailable`.

mod support;

use std::time::Duration;

use bot_worker::BotConfig;
use chat_shared::protocol::ErrorCode;
use support::chat::{Chat, member, quick_config};
use support::fake_llm::{FakeLlm, Step, answer};

#[tokio::test]
async fn a_model_too_slow_every_time_gives_bot_unavailable_to_the_requester_only() {
    let slow = Step::Delayed(Duration::from_secs(30), Box::new(answer("too late")));
    let llm = FakeLlm::start(vec![], slow).await;
    let config = BotConfig {
        job_timeout: Duration::from_millis(300),
        ..quick_config()
    };
    let chat = Chat::with_llm(&llm, config).await;
    let (ann, bob) = (member("ann"), member("bob"));
    let mut notices = chat.notices().await;
    let mut feed = chat.feed("g1").await;
    let ask = chat.ask(&ann, "g1", "@slimy are you there?", false).await;
    chat.post(&bob, "g1", "bob is here too", false).await;

    let (user, frame) = notices.next().await;
    assert_eq!(user, "ann", "only the requester is told");
    assert_eq!(frame.code, ErrorCode::BotUnavailable);
    assert_eq!(frame.message_id.as_deref(), Some(ask.message_id.as_str()));
    assert_eq!(frame.guild_id.as_deref(), Some("g1"));
    assert_eq!(llm.calls().len(), 3, "every delivery tried the model once");
    assert_eq!(chat.replies_in_log("g1", &ask.message_id).await, 0);

    // Nothing else was published: the next message in the guild is the marker, not a reply.
    let marker = chat.post(&bob, "g1", "marker", false).await;
    let mut seen = Vec::new();
    while let Some(entry) = futures::StreamExt::next(&mut feed.0).await {
        seen.push(entry.message.message_id.clone());
        if entry.message.message_id == marker.message_id {
            break;
        }
    }
    assert!(!seen.iter().any(|id| id.ends_with("-bot")), "{seen:?}");
}

#[tokio::test]
async fn a_429_retry_after_is_the_retry_delay() {
    let llm = FakeLlm::start(vec![Step::Status(429, Some("1"))], answer("after the wait")).await;
    let chat = Chat::with_llm(&llm, quick_config()).await;
    let mut feed = chat.feed("g1").await;
    let ask = chat.ask(&member("ann"), "g1", "@slimy hi", false).await;
    assert_eq!(feed.reply_to(&ask.message_id).await.text, "after the wait");
    let calls = llm.calls();
    assert_eq!(calls.len(), 2);
    let waited = calls[1].at - calls[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "the retry came after {waited:?}, before the 1 s the server asked for (backoff is 20 ms)"
    );
}

#[tokio::test]
async fn a_503_retry_after_is_honoured_too() {
    let llm = FakeLlm::start(vec![Step::Status(503, Some("1"))], answer("back")).await;
    let chat = Chat::with_llm(&llm, quick_config()).await;
    let mut feed = chat.feed("g1").await;
    let ask = chat.ask(&member("ann"), "g1", "@slimy hi", false).await;
    assert_eq!(feed.reply_to(&ask.message_id).await.text, "back");
    let calls = llm.calls();
    assert!(calls[1].at - calls[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_server_error_is_retried_with_backoff() {
    let llm = FakeLlm::start(
        vec![Step::Status(500, None), Step::Status(502, None)],
        answer("third time"),
    )
    .await;
    let chat = Chat::with_llm(&llm, quick_config()).await;
    let mut feed = chat.feed("g1").await;
    let ask = chat.ask(&member("ann"), "g1", "@slimy hi", false).await;
    assert_eq!(feed.reply_to(&ask.message_id).await.text, "third time");
    let calls = llm.calls();
    assert_eq!(calls.len(), 3);
    let (first_gap, second_gap) = (calls[1].at - calls[0].at, calls[2].at - calls[1].at);
    assert!(first_gap >= Duration::from_millis(20), "{first_gap:?}");
    assert!(
        second_gap >= Duration::from_millis(40),
        "the delay doubles: {second_gap:?}"
    );
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let llm = FakeLlm::start(vec![Step::Status(400, None)], answer("never")).await;
    let chat = Chat::with_llm(&llm, quick_config()).await;
    let mut notices = chat.notices().await;
    let ask = chat.ask(&member("ann"), "g1", "@slimy hi", false).await;
    let (user, frame) = notices.next().await;
    assert_eq!(
        (user.as_str(), frame.code),
        ("ann", ErrorCode::BotUnavailable)
    );
    assert_eq!(frame.message_id.as_deref(), Some(ask.message_id.as_str()));
    assert_eq!(llm.calls().len(), 1, "a 400 will fail again: one call only");
}

#[tokio::test]
async fn an_unreachable_model_server_is_retried_then_given_up() {
    let llm = FakeLlm::start(vec![], answer("unused")).await;
    let mut settings = support::chat::llm_settings(&llm);
    drop(llm);
    // A port nothing listens on any more.
    settings.base_url = format!("http://127.0.0.1:{}/v1", testkit::free_port());
    let chat = Chat::with_backend(
        |bus| std::sync::Arc::new(bot_worker::LlmBot::new(bus, &settings).expect("LLM bot")),
        quick_config(),
    )
    .await;
    let mut notices = chat.notices().await;
    let ask = chat.ask(&member("ann"), "g1", "@slimy hi", false).await;
    let (user, frame) = notices.next().await;
    assert_eq!(
        (user.as_str(), frame.code),
        ("ann", ErrorCode::BotUnavailable)
    );
    assert_eq!(frame.message_id.as_deref(), Some(ask.message_id.as_str()));
}

#[tokio::test]
async fn an_https_base_url_speaks_tls() {
    // The fake server speaks plain HTTP: the TLS handshake fails, which is a transient
    // connection failure (retried, then bot_unavailable), never a panic or a plain-text request.
    let llm = FakeLlm::start(vec![], answer("unused")).await;
    let mut settings = support::chat::llm_settings(&llm);
    settings.base_url = llm.base_url().replace("http://", "https://");
    let chat = Chat::with_backend(
        |bus| std::sync::Arc::new(bot_worker::LlmBot::new(bus, &settings).expect("LLM bot")),
        quick_config(),
    )
    .await;
    let mut notices = chat.notices().await;
    let ask = chat.ask(&member("ann"), "g1", "@slimy hi", false).await;
    let (user, frame) = notices.next().await;
    assert_eq!(
        (user.as_str(), frame.code),
        ("ann", ErrorCode::BotUnavailable)
    );
    assert_eq!(frame.message_id.as_deref(), Some(ask.message_id.as_str()));
    assert!(
        llm.calls().is_empty(),
        "no request was understood as plain HTTP"
    );
}
