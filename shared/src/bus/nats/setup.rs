//! Creates or updates, idempotently, everything the bus needs on the server: the guild log
//! stream, the bot work queue and its shared consumer, and the messageId claims bucket.
//! Every process runs this at start; the last one to start sets the limits.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};

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
    pub claims: kv::Store,
    pub bot_consumer: PullConsumer,
}

/// Creates or updates the streams, the consumer and the bucket.
pub async fn ensure(js: &Context, config: &NatsConfig) -> Result<Setup, BusError> {
    let log = ensure_stream(js, log_stream_config(config)).await?;
    let bot = ensure_stream(js, bot_stream_config(config)).await?;
    let bot_consumer = bot
        .create_consumer(bot_consumer_config(config))
        .await
        .map_err(|e| unavailable("creating the bot consumer", e))?;
    ensure_stream(js, claims_stream_config(config)).await?;
    let claims = js
        .get_key_value(CLAIMS_BUCKET)
        .await
        .map_err(|e| unavailable("opening the claims bucket", e))?;
    Ok(Setup {
        log,
        claims,
        bot_consumer,
    })
}

async fn ensure_stream(
    js: &Context,
    config: stream::Config,
) -> Result<jetstream::stream::Stream, BusError> {
    let name = config.name.clone();
    js.create_or_update_stream(config)
        .await
        .map_err(|e| unavailable(&format!("creating stream {name}"), e))?;
    js.get_stream(&name)
        .await
        .map_err(|e| unavailable(&format!("opening stream {name}"), e))
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
