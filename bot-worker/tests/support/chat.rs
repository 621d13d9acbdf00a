//! A whole chat in this test process over the in-memory bus: the real router
//! (`router_worker::run`) and the real bot worker (`bot_worker::run`), with ways to send as a
//! user, follow a guild's messages, and follow the user notices.

use std::sync::Arc;
use std::time::Duration;

use bot_worker::{Backend, BotConfig, LlmBot, LlmSettings, PromptLimits};
use chat_shared::bus::{
    BoxStream, Bus, INTERNAL_VERSION, LogEntry, SendAck, SendRequest, Topic, UserEvent, Visibility,
};
use chat_shared::bus::{MemoryBus, MemoryBusConfig};
use chat_shared::protocol::identity::{Role, UserInfo};
use chat_shared::protocol::{ChatMessage, ErrorFrame};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::fake_llm::FakeLlm;

/// Longest wait for anything a test expects; only a hang reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn member(id: &str) -> UserInfo {
    UserInfo::new(id, id, Role::Member)
}

pub fn admin(id: &str) -> UserInfo {
    UserInfo::new(id, id, Role::Admin)
}

/// Settings pointing at `llm`, with a key.
pub fn llm_settings(llm: &FakeLlm) -> LlmSettings {
    LlmSettings {
        base_url: llm.base_url(),
        api_key: Some("test-key".into()),
        model: "test-model".into(),
        max_tokens: 180,
        temperature: 0.7,
        connect_timeout: Duration::from_secs(2),
        prompt: PromptLimits::default(),
    }
}

/// The job settings of the tests: quick retries, a generous timeout.
pub fn quick_config() -> BotConfig {
    BotConfig {
        job_timeout: Duration::from_secs(10),
        retry_base: Duration::from_millis(20),
        ..BotConfig::default()
    }
}

/// Router and bot worker over one in-memory bus (stopped when dropped).
pub struct Chat {
    pub bus: Arc<MemoryBus>,
    stop: CancellationToken,
}

impl Chat {
    /// With the language-model bot asking `llm`.
    pub async fn with_llm(llm: &FakeLlm, config: BotConfig) -> Chat {
        Chat::with_backend(
            |bus| Arc::new(LlmBot::new(bus, &llm_settings(llm)).expect("LLM bot")),
            config,
        )
        .await
    }

    pub async fn with_backend(
        backend: impl FnOnce(Arc<dyn Bus>) -> Arc<dyn Backend>,
        config: BotConfig,
    ) -> Chat {
        let bus = MemoryBus::new(MemoryBusConfig::default());
        let stop = CancellationToken::new();
        let dyn_bus: Arc<dyn Bus> = bus.clone();
        let router = router_worker::run(
            dyn_bus.clone(),
            Default::default(),
            Default::default(),
            stop.clone(),
        );
        tokio::spawn(async move { router.await.expect("router") });
        let worker = bot_worker::run(dyn_bus.clone(), backend(dyn_bus), config, stop.clone());
        tokio::spawn(async move { worker.await.expect("bot worker") });
        Chat { bus, stop }
    }

    /// Posts `text` as `from` (a member posts only where the gateway verified membership).
    pub async fn post(
        &self,
        from: &UserInfo,
        guild: &str,
        text: &str,
        admin_only: bool,
    ) -> SendAck {
        self.send(from, guild, text, admin_only, false).await
    }

    /// Posts `text` as `from` and asks the bot about it.
    pub async fn ask(&self, from: &UserInfo, guild: &str, text: &str, admin_only: bool) -> SendAck {
        self.send(from, guild, text, admin_only, true).await
    }

    async fn send(
        &self,
        from: &UserInfo,
        guild: &str,
        text: &str,
        admin_only: bool,
        request_bot: bool,
    ) -> SendAck {
        let request = SendRequest {
            v: INTERNAL_VERSION,
            sender: from.clone(),
            guild_id: Some(guild.into()),
            text: Some(text.into()),
            admin_only,
            request_bot,
            message_id: None,
            member_verified: true,
        };
        match self.bus.submit(request).await {
            Ok(Ok(ack)) => ack,
            other => panic!("send {text:?} was not acked: {other:?}"),
        }
    }

    /// The guild's live messages from now on.
    pub async fn feed(&self, guild: &str) -> Feed {
        Feed(
            self.bus
                .subscribe(Topic::Guild(guild.into()))
                .await
                .expect("subscribe"),
        )
    }

    /// Every user notice from now on.
    pub async fn notices(&self) -> Notices {
        Notices(self.bus.user_events().await.expect("user events"))
    }

    /// How many replies to `request_id` the guild's log holds.
    pub async fn replies_in_log(&self, guild: &str, request_id: &str) -> usize {
        replies_in_log(self.bus.as_ref(), guild, request_id).await
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How many replies to `request_id` a guild's log holds.
pub async fn replies_in_log(bus: &dyn Bus, guild: &str, request_id: &str) -> usize {
    let (entries, _) = bus
        .read_before(guild, None, 1000, Visibility::All)
        .await
        .expect("read the log");
    let reply_id = format!("{request_id}-bot");
    entries
        .iter()
        .filter(|e| e.message.message_id == reply_id)
        .count()
}

/// A guild's live messages.
pub struct Feed(pub BoxStream<LogEntry>);

impl Feed {
    /// Waits for the bot's reply to `request_id`.
    pub async fn reply_to(&mut self, request_id: &str) -> Arc<ChatMessage> {
        let reply_id = format!("{request_id}-bot");
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(entry) = self.0.next().await {
                if entry.message.message_id == reply_id {
                    return entry.message;
                }
            }
            panic!("the guild feed ended");
        })
        .await;
        let reply = found.unwrap_or_else(|_| panic!("no reply to {request_id}"));
        assert_eq!(reply.from, UserInfo::bot());
        reply
    }
}

/// User notices as `(user id, error frame)`.
pub struct Notices(pub BoxStream<(String, UserEvent)>);

impl Notices {
    /// Waits for the next notice.
    pub async fn next(&mut self) -> (String, ErrorFrame) {
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some((user, event)) = self.0.next().await {
                if let UserEvent::Notice { frame } = event {
                    return (user, frame);
                }
            }
            panic!("the user events ended");
        })
        .await;
        found.unwrap_or_else(|_| panic!("no user notice"))
    }
}
