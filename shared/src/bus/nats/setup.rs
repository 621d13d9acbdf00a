//! Everything the bus needs on the server: the guild log stream, the bot work queue and its
//! shared consumer, and the messageId claims bucket (read in batches: the owner needs
//! nats-server ≥ 2.11, [`check_server_version`]). One component owns their configuration
//! ([`StreamRole::Owner`]: the router, or an explicit migrate step) and creates or updates it;
//! the others ([`StreamRole::Verify`]: gateways, bot workers) never rewrite it: they create
//! what is missing (nothing to lose) and refuse to start when an existing one would keep less
//! than they are configured for (fewer messages, a
//! shorter age, fewer replicas): a process started with defaults can no longer purge the log.
//! The rule is generic over [`stream_configs`], the list of every stream.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{CreateStreamError, CreateStreamErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context, ErrorCode};
use tokio::time::Instant;

use super::config::NatsConfig;
use super::errors::unavailable;
use super::subjects::*;
use crate::bus::BusError;

/// Window in which JetStream drops a second publish with the same `Nats-Msg-Id`.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a queued bot job is kept when no worker takes it.
const BOT_JOB_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// Handles on what [`ensure`] set up.
pub struct Setup {
    pub log: jetstream::stream::Stream,
    pub bot_consumer: PullConsumer,
}

/// How long stream creation waits for a cluster that cannot place a stream yet: a node that
/// just started is "offline" to the meta leader until its first report (seen when every pod
/// of a deployment starts at once).
const PLACEMENT_WAIT: Duration = Duration::from_secs(30);
/// Pause between two attempts while the cluster cannot place a stream.
const PLACEMENT_RETRY: Duration = Duration::from_millis(250);

/// The oldest nats-server the owner (the router) works with: it reads the claims of a batch
/// of sends with one batch direct get (`multi_last`, 2.11).
const MIN_SERVER_VERSION: (u64, u64) = (2, 11);

/// Refuses a nats-server older than [`MIN_SERVER_VERSION`] (its version as the server reports
/// it in INFO, e.g. `2.12.8`), with an error saying what to run instead.
pub fn check_server_version(version: &str) -> Result<(), BusError> {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u64>().ok());
    let found = (parts.next().flatten(), parts.next().flatten());
    let (want_major, want_minor) = MIN_SERVER_VERSION;
    match found {
        (Some(major), Some(minor)) if (major, minor) >= (want_major, want_minor) => Ok(()),
        _ => Err(BusError::Unavailable(format!(
            "nats-server {version:?} is too old: the router needs {want_major}.{want_minor} or \
             newer (batch direct get); scripts/install-nats-server.sh installs one"
        ))),
    }
}

/// Who may write the stream configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRole {
    /// Creates or updates every stream, consumer and bucket (router, migrate).
    Owner,
    /// Reads them and refuses a configuration that would lose data (gateway, bot worker).
    Verify,
}

/// Every stream the bus needs, as this process is configured to want it.
pub fn stream_configs(config: &NatsConfig) -> Vec<stream::Config> {
    vec![
        log_stream_config(config),
        bot_stream_config(config),
        claims_stream_config(config),
    ]
}

/// Sets up (owner) or verifies (others) the streams, the consumer and the bucket.
pub async fn ensure(
    js: &Context,
    config: &NatsConfig,
    role: StreamRole,
) -> Result<Setup, BusError> {
    for wanted in stream_configs(config) {
        match role {
            StreamRole::Owner => ensure_stream(js, wanted).await?,
            StreamRole::Verify => verify_stream(js, wanted).await?,
        };
    }
    let log = js
        .get_stream(LOG_STREAM)
        .await
        .map_err(|e| unavailable("opening the log stream", e))?;
    let bot = js
        .get_stream(BOT_STREAM)
        .await
        .map_err(|e| unavailable("opening the bot stream", e))?;
    let bot_consumer = match role {
        StreamRole::Owner => bot
            .create_consumer(bot_consumer_config(config))
            .await
            .map_err(|e| unavailable("creating the bot consumer", e))?,
        StreamRole::Verify => match bot.get_consumer(BOT_CONSUMER).await {
            Ok(consumer) => consumer,
            Err(_) => bot
                .create_consumer(bot_consumer_config(config))
                .await
                .map_err(|e| unavailable("creating the missing bot consumer", e))?,
        },
    };
    Ok(Setup { log, bot_consumer })
}

async fn ensure_stream(
    js: &Context,
    config: stream::Config,
) -> Result<jetstream::stream::Stream, BusError> {
    let name = config.name.clone();
    until_placed(&name, || js.create_or_update_stream(config.clone()))
        .await
        .map_err(|e| unavailable(&format!("creating stream {name}"), e))?;
    js.get_stream(&name)
        .await
        .map_err(|e| unavailable(&format!("opening stream {name}"), e))
}

/// Reads a stream and checks it keeps at least what `wanted` asks for.
async fn verify_stream(
    js: &Context,
    wanted: stream::Config,
) -> Result<jetstream::stream::Stream, BusError> {
    let mut stream = match js.get_stream(&wanted.name).await {
        Ok(stream) => stream,
        // Nothing exists yet, so nothing can be lost: create it as wanted (never update an
        // existing one); the owner aligns the settings when it starts.
        Err(_) => until_placed(&wanted.name, || js.create_stream(wanted.clone()))
            .await
            .map_err(|e| unavailable(&format!("creating missing stream {}", wanted.name), e))?,
    };
    let info = stream
        .info()
        .await
        .map_err(|e| unavailable(&format!("reading stream {}", wanted.name), e))?;
    if let Some(problem) = data_loss(&info.config, &wanted) {
        return Err(BusError::Unavailable(format!(
            "stream {} is configured to keep less than this process expects ({problem}); \
             align LOG_RETAIN_PER_GUILD / LOG_MAX_AGE_SECS / NATS_REPLICAS with the router's",
            wanted.name
        )));
    }
    Ok(stream)
}

/// Runs a stream creation until the cluster can place the stream, for at most
/// [`PLACEMENT_WAIT`]; any other outcome is returned at once.
async fn until_placed<T, F, Fut>(name: &str, mut create: F) -> Result<T, CreateStreamError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CreateStreamError>>,
{
    let deadline = Instant::now() + PLACEMENT_WAIT;
    loop {
        match create().await {
            Err(error) if is_placement_pending(&error) && Instant::now() < deadline => {
                tracing::info!(stream = name, %error, "the cluster cannot place the stream yet; trying again");
                tokio::time::sleep(PLACEMENT_RETRY).await;
            }
            outcome => return outcome,
        }
    }
}

/// JetStream found no peers to place the stream on (a peer offline, or not yet known): a
/// cluster that is still forming.
fn is_placement_pending(error: &CreateStreamError) -> bool {
    matches!(error.kind(), CreateStreamErrorKind::JetStream(e)
        if e.error_code() == ErrorCode::CLUSTER_NO_PEERS)
}

/// What an existing configuration would lose against the wanted one, if anything. Zero or
/// negative limits mean unlimited in JetStream.
pub fn data_loss(existing: &stream::Config, wanted: &stream::Config) -> Option<String> {
    fn keeps_less_i64(existing: i64, wanted: i64) -> bool {
        existing > 0 && (wanted <= 0 || existing < wanted)
    }
    let age = |d: Duration| d.as_secs();
    if keeps_less_i64(
        existing.max_messages_per_subject,
        wanted.max_messages_per_subject,
    ) {
        return Some(format!(
            "{} messages per subject, {} wanted",
            existing.max_messages_per_subject, wanted.max_messages_per_subject
        ));
    }
    if keeps_less_i64(existing.max_messages, wanted.max_messages)
        || keeps_less_i64(existing.max_bytes, wanted.max_bytes)
    {
        return Some("a lower message or byte limit".to_owned());
    }
    let (have, want) = (age(existing.max_age), age(wanted.max_age));
    if have > 0 && (want == 0 || have < want) {
        return Some(format!("max age {have} s, {want} s wanted"));
    }
    if existing.num_replicas.max(1) < wanted.num_replicas.max(1) {
        return Some(format!(
            "{} replicas, {} wanted",
            existing.num_replicas, wanted.num_replicas
        ));
    }
    None
}

fn log_stream_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: LOG_STREAM.to_owned(),
        description: Some("Per-guild chat logs, one subject per guild".to_owned()),
        subjects: vec![LOG_ALL.to_owned()],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_messages_per_subject: config.log_retain_per_guild,
        max_age: config.log_max_age(),
        storage: StorageType::File,
        num_replicas: config.nats_replicas,
        duplicate_window: DUPLICATE_WINDOW,
        allow_direct: true,
        ..Default::default()
    }
}

fn bot_stream_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: BOT_STREAM.to_owned(),
        description: Some("Bot requests waiting for a bot worker".to_owned()),
        subjects: vec![BOT_JOBS_SUBJECT.to_owned()],
        retention: RetentionPolicy::WorkQueue,
        discard: DiscardPolicy::Old,
        max_age: BOT_JOB_MAX_AGE,
        storage: StorageType::File,
        num_replicas: config.nats_replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

fn bot_consumer_config(config: &NatsConfig) -> pull::Config {
    pull::Config {
        durable_name: Some(BOT_CONSUMER.to_owned()),
        description: Some("Shared by every bot worker".to_owned()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.bot_ack_wait(),
        max_deliver: config.bot_max_deliver,
        ..Default::default()
    }
}

/// The stream behind the claims bucket, as `create_key_value` would make it (built here
/// because async-nats's own bucket creation first reads account info in a shape that
/// nats-server 2.9 does not send).
fn claims_stream_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: format!("KV_{CLAIMS_BUCKET}"),
        description: Some("messageId -> {owner, guild, seq}".to_owned()),
        subjects: vec![format!("$KV.{CLAIMS_BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: config.log_max_age(),
        storage: StorageType::File,
        num_replicas: config.nats_replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cluster_without_peers_to_place_on_is_waited_for() {
        let api = |err_code: u64| {
            let error: jetstream::Error = serde_json::from_value(serde_json::json!({
                "code": 400, "err_code": err_code, "description": "from the server"
            }))
            .expect("an API error");
            CreateStreamError::new(CreateStreamErrorKind::JetStream(error))
        };
        let table = [
            (api(10005), true),  // no suitable peers for placement (a peer offline)
            (api(10023), false), // insufficient resources
            (api(10058), false), // stream name already in use with another configuration
            (
                CreateStreamError::new(CreateStreamErrorKind::TimedOut),
                false,
            ),
            (
                CreateStreamError::new(CreateStreamErrorKind::JetStreamUnavailable),
                false,
            ),
        ];
        for (error, pending) in table {
            assert_eq!(is_placement_pending(&error), pending, "{error}");
        }
    }

    #[test]
    fn only_keeping_less_is_a_data_loss() {
        let wanted = log_stream_config(&NatsConfig {
            nats_replicas: 3,
            ..Default::default()
        });
        let with = |f: &dyn Fn(&mut stream::Config)| {
            let mut c = wanted.clone();
            f(&mut c);
            c
        };
        let table: Vec<(stream::Config, bool)> = vec![
            (wanted.clone(), false),
            (with(&|c| c.max_messages_per_subject = 10), true),
            (with(&|c| c.max_messages_per_subject = 20_000), false),
            (with(&|c| c.max_messages_per_subject = -1), false),
            (with(&|c| c.max_age = Duration::from_secs(60)), true),
            (with(&|c| c.max_age = Duration::ZERO), false),
            (with(&|c| c.num_replicas = 1), true),
            (with(&|c| c.num_replicas = 5), false),
            (with(&|c| c.max_bytes = 1024), true),
        ];
        for (i, (existing, loss)) in table.into_iter().enumerate() {
            assert_eq!(data_loss(&existing, &wanted).is_some(), loss, "row {i}");
        }
    }

    #[test]
    fn servers_older_than_2_11_are_refused() {
        let table = [
            ("2.12.8", true),
            ("2.11.0", true),
            ("3.0.0", true),
            ("2.11.0-RC.1", true),
            ("2.10.26", false),
            ("2.9.10", false),
            ("", false),
            ("garbage", false),
        ];
        for (version, ok) in table {
            assert_eq!(check_server_version(version).is_ok(), ok, "{version}");
        }
    }

    #[test]
    fn every_stream_is_in_the_list() {
        let names: Vec<String> = stream_configs(&NatsConfig::default())
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [LOG_STREAM, BOT_STREAM, &format!("KV_{CLAIMS_BUCKET}")]
        );
    }
}
