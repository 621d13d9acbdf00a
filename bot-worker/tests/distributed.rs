//! Bot workers as real processes over a real nats-server, with a real router-worker process:
//! a job whose worker is killed is redelivered (after BOT_ACK_WAIT_SECS) to another worker and
//! answered once; a job answered twice (its ack wait ran out while the first answer was still
//! coming) still shows one reply, because the router keeps one message per `{id}-bot`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::nats::{NatsBus, NatsConfig};
use chat_shared::bus::{Bus, INTERNAL_VERSION, SendAck, SendRequest, Topic};
use support::chat::{Feed, PATIENCE, member, replies_in_log};
use support::fake_llm::{FakeLlm, Step, answer};
use testkit::{ChildService, NatsServer, cargo_bin};

const ACK_WAIT_SECS: u64 = 1;

struct Deployment {
    nats: NatsServer,
    llm_base_url: String,
    bus: Arc<NatsBus>,
    _router: ChildService,
}

impl Deployment {
    async fn start(llm: &FakeLlm) -> Deployment {
        let nats = NatsServer::start();
        let router = ChildService::spawn(
            cargo_bin("router-worker"),
            Vec::<String>::new(),
            env(&nats, []),
        );
        assert!(
            router
                .wait_for_output("router-worker serving", PATIENCE)
                .await,
            "router-worker did not start:\n{}",
            router.log_tail(30)
        );
        let config = NatsConfig {
            bot_ack_wait_secs: ACK_WAIT_SECS,
            ..NatsConfig::default()
        };
        let bus = NatsBus::connect(&nats.url(), &config)
            .await
            .expect("connect to NATS");
        Deployment {
            nats,
            llm_base_url: llm.base_url(),
            bus,
            _router: router,
        }
    }

    async fn bot_worker(&self) -> ChildService {
        let bot_env = [
            ("BOT_LLM_BASE_URL", self.llm_base_url.as_str()),
            ("BOT_JOB_TIMEOUT_MS", "120000"),
            ("BOT_RETRY_BASE_MS", "50"),
        ];
        let worker = ChildService::spawn(
            cargo_bin("bot-worker"),
            Vec::<String>::new(),
            env(&self.nats, bot_env),
        );
        assert!(
            worker
                .wait_for_output("bot-worker taking jobs", PATIENCE)
                .await,
            "bot-worker did not start:\n{}",
            worker.log_tail(30)
        );
        worker
    }

    async fn ask(&self, guild: &str, text: &str) -> SendAck {
        let request = SendRequest {
            v: INTERNAL_VERSION,
            sender: member("ann"),
            guild_id: Some(guild.into()),
            text: Some(text.into()),
            admin_only: false,
            request_bot: true,
            message_id: None,
            member_verified: true,
        };
        match self.bus.submit(request).await {
            Ok(Ok(ack)) => ack,
            other => panic!("the request was not acked: {other:?}"),
        }
    }

    async fn feed(&self, guild: &str) -> Feed {
        Feed(
            self.bus
                .subscribe(Topic::Guild(guild.into()))
                .await
                .expect("subscribe"),
        )
    }
}

/// The environment of every process: the same NATS settings everywhere (each process
/// configures the shared consumer when it connects).
fn env<'a>(
    nats: &NatsServer,
    extra: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("NATS_URL".to_owned(), nats.url()),
        ("LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("BOT_ACK_WAIT_SECS".to_owned(), ACK_WAIT_SECS.to_string()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ];
    env.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
    env
}

/// Waits until `needle` has appeared `n` times across the workers' output.
async fn wait_for_log_count(workers: &[&ChildService], needle: &str, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count: usize = workers
            .iter()
            .map(|w| {
                std::fs::read_to_string(w.log_path())
                    .unwrap_or_default()
                    .matches(needle)
                    .count()
            })
            .sum();
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} appeared {count} times, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_of_a_killed_worker_is_answered_once_by_another() {
    let never = Step::Delayed(Duration::from_secs(600), Box::new(answer("never sent")));
    let llm = FakeLlm::start(vec![never], answer("answered after the redelivery")).await;
    let d = Deployment::start(&llm).await;
    let mut first = d.bot_worker().await;
    let mut feed = d.feed("g1").await;
    let ask = d.ask("g1", "@slimy are you there?").await;

    llm.wait_for_calls(1).await;
    first.kill();
    let _second = d.bot_worker().await;

    let reply = feed.reply_to(&ask.message_id).await;
    assert_eq!(reply.text, "answered after the redelivery");
    assert_eq!(
        replies_in_log(d.bus.as_ref(), "g1", &ask.message_id).await,
        1
    );
}

#[tokio::test]
async fn a_job_answered_twice_shows_one_reply() {
    // The first answer takes longer than the ack wait, so the job is delivered again and
    // answered at once; then the first answer arrives and is posted too.
    let slow = Step::Delayed(
        Duration::from_secs(3 * ACK_WAIT_SECS),
        Box::new(answer("the slow answer")),
    );
    let llm = FakeLlm::start(vec![slow], answer("the quick answer")).await;
    let d = Deployment::start(&llm).await;
    let one = d.bot_worker().await;
    let two = d.bot_worker().await;
    let mut feed = d.feed("g1").await;
    let ask = d.ask("g1", "@slimy hello").await;

    let reply = feed.reply_to(&ask.message_id).await;
    assert_eq!(reply.text, "the quick answer");
    llm.wait_for_answers(2).await;
    wait_for_log_count(&[&one, &two], "bot reply posted", 2).await;

    assert_eq!(llm.calls().len(), 2, "the job was answered twice");
    assert_eq!(
        replies_in_log(d.bus.as_ref(), "g1", &ask.message_id).await,
        1
    );
    let (entries, _) = d
        .bus
        .read_before("g1", None, 100, chat_shared::bus::Visibility::All)
        .await
        .expect("read the log");
    let texts: Vec<&str> = entries.iter().map(|e| e.message.text.as_str()).collect();
    assert!(!texts.contains(&"the slow answer"), "{texts:?}");
}
