//! Partition ownership among routers: one writer per guild. Every router heartbeats
//! `member.{router}` in the in-memory bucket `CHAT_ROUTERS` (entries expire after
//! [`LEASE_TTL`]), computes which partitions it should own among the live members
//! ([`super::partitions::wanted`]), and holds `partition.{p}` for each by creating it and then
//! renewing it with its revision every [`TICK`]. It subscribes to `chat.ingress.{p}` only
//! while it holds the lease. A partition it should no longer own is released (key deleted)
//! and its subscription kept one more tick, so the next owner is subscribed before it leaves;
//! both share the queue group `routers` meanwhile, so a send is still taken once.
//!
//! A router that dies stops renewing: its leases expire after [`LEASE_TTL`] and the next owner
//! takes them on its next tick, so a partition is without a router for at most
//! [`TAKEOVER_BOUND`]; sends there meanwhile get "no responders" (the gateway answers
//! `server_error`), never an ack that was not stored. The fence for the log itself stays
//! `Nats-Expected-Last-Subject-Sequence`: even two routers that both believe they own a
//! partition cannot both append on the same head.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::Context;
use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::errors::unavailable;
use super::partitions::{INGRESS_PARTITIONS, wanted};
use super::subjects::{ROUTERS_BUCKET, ROUTERS_QUEUE_GROUP, partition_subject};
use crate::bus::{BusError, IngressItem};

/// How long a lease or heartbeat lives without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(4);
/// How often a router renews its leases and looks at the live members.
pub const TICK: Duration = Duration::from_secs(1);
/// Longest time a partition whose owner died is left without a router.
pub const TAKEOVER_BOUND: Duration = Duration::from_secs(6);

/// Turns a partition's raw ingress messages into items on the router's one channel.
pub type Forward = Arc<dyn Fn(async_nats::Message) -> Option<IngressItem> + Send + Sync>;

/// One router's view of its partitions.
pub struct Ownership {
    me: String,
    js: Context,
    replicas: usize,
    client: Client,
    bucket: kv::Store,
    items: mpsc::Sender<IngressItem>,
    forward: Forward,
    held: HashMap<u32, Held>,
}

struct Held {
    revision: u64,
    /// Forwards the partition's subscription into `items`; aborting it unsubscribes.
    task: JoinHandle<()>,
    /// Released this many ticks ago (the subscription stays one tick longer).
    released: Option<u32>,
}

impl Ownership {
    /// Opens (creating when needed) the routers' bucket and takes this router's first share,
    /// so that a lone router serves every partition as soon as this returns.
    pub async fn start(
        js: &Context,
        client: Client,
        replicas: usize,
        items: mpsc::Sender<IngressItem>,
        forward: Forward,
    ) -> Result<Ownership, BusError> {
        let bucket = open_bucket(js, replicas).await?;
        let mut ownership = Ownership {
            me: ulid::Ulid::new().to_string(),
            js: js.clone(),
            replicas,
            client,
            bucket,
            items,
            forward,
            held: HashMap::new(),
        };
        ownership.tick().await?;
        super::connection::round_trip(&ownership.client).await?;
        tracing::info!(router = %ownership.me, partitions = ownership.held.len(),
            "router holds its ingress partitions");
        Ok(ownership)
    }

    /// Renews and rebalances every [`TICK`] until the router drops its ingress stream; then
    /// gives every lease back so that the others take over at once.
    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.items.closed() => break,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.tick().await {
                tracing::warn!(%error, "could not renew the ingress partitions; keeping them");
                // The bucket lives in memory: after a NATS restart it has to be made again.
                match open_bucket(&self.js, self.replicas).await {
                    Ok(bucket) => self.bucket = bucket,
                    Err(error) => tracing::debug!(%error, "routers bucket not back yet"),
                }
            }
        }
        self.release_all().await;
    }

    async fn tick(&mut self) -> Result<(), BusError> {
        self.bucket
            .put(member_key(&self.me), bytes::Bytes::new())
            .await
            .map_err(|e| unavailable("heartbeating a router", e))?;
        let members = self.members().await?;
        let mine = wanted(&self.me, &members);
        for partition in 0..INGRESS_PARTITIONS {
            if mine.contains(&partition) {
                self.hold(partition).await;
            } else if self.held.contains_key(&partition) {
                self.let_go(partition).await;
            }
        }
        Ok(())
    }

    /// The routers whose heartbeat has not expired.
    async fn members(&self) -> Result<Vec<String>, BusError> {
        let mut keys = self
            .bucket
            .keys()
            .await
            .map_err(|e| unavailable("listing the routers", e))?;
        let mut members = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| unavailable("listing the routers", e))?;
            if let Some(router) = key.strip_prefix("member.") {
                members.push(router.to_owned());
            }
        }
        if !members.contains(&self.me) {
            members.push(self.me.clone());
        }
        Ok(members)
    }

    /// Creates or renews the lease of a partition this router should own.
    async fn hold(&mut self, partition: u32) {
        let key = partition_key(partition);
        let value = bytes::Bytes::from(self.me.clone());
        if let Some(held) = self.held.get_mut(&partition) {
            let renewed = self.bucket.update(&key, value.clone(), held.revision).await;
            // A lease gone entirely (expired while this router stalled, or lost with a NATS
            // restart) is taken again at once when nobody else has it.
            let renewed = match renewed {
                Ok(revision) => Ok(revision),
                Err(_) => self
                    .bucket
                    .create(&key, value)
                    .await
                    .map_err(|e| e.to_string()),
            };
            match renewed {
                Ok(revision) => {
                    held.revision = revision;
                    held.released = None;
                }
                Err(error) => {
                    tracing::warn!(partition, %error, "lost an ingress partition lease");
                    self.drop_partition(partition);
                }
            }
            return;
        }
        match self.bucket.create(&key, value).await {
            Ok(revision) => {
                if let Some(task) = self.subscribe(partition).await {
                    tracing::info!(partition, "took an ingress partition");
                    let held = Held {
                        revision,
                        task,
                        released: None,
                    };
                    self.held.insert(partition, held);
                }
            }
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                tracing::debug!(partition, "partition still leased by another router");
            }
            Err(error) => tracing::warn!(partition, %error, "could not lease a partition"),
        }
    }

    /// Releases a partition another router should own: the key first, the subscription one
    /// tick later.
    async fn let_go(&mut self, partition: u32) {
        let Some(held) = self.held.get_mut(&partition) else {
            return;
        };
        match held.released {
            None => {
                held.released = Some(0);
                let revision = held.revision;
                if let Err(error) = self
                    .bucket
                    .delete_expect_revision(partition_key(partition), Some(revision))
                    .await
                {
                    tracing::debug!(partition, %error, "partition lease left to expire");
                }
                tracing::info!(partition, "handing an ingress partition over");
            }
            Some(_) => self.drop_partition(partition),
        }
    }

    fn drop_partition(&mut self, partition: u32) {
        if let Some(held) = self.held.remove(&partition) {
            held.task.abort();
        }
    }

    async fn release_all(&mut self) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            if let Some(held) = self.held.remove(&partition) {
                held.task.abort();
                let _ = self
                    .bucket
                    .delete_expect_revision(partition_key(partition), Some(held.revision))
                    .await;
            }
        }
        let _ = self.bucket.delete(member_key(&self.me)).await;
        tracing::info!("router gave its ingress partitions back");
    }

    async fn subscribe(&self, partition: u32) -> Option<JoinHandle<()>> {
        let subscriber = match self
            .client
            .queue_subscribe(partition_subject(partition), ROUTERS_QUEUE_GROUP.to_owned())
            .await
        {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::warn!(partition, %error, "could not subscribe to a partition");
                return None;
            }
        };
        let (items, forward) = (self.items.clone(), self.forward.clone());
        Some(tokio::spawn(async move {
            let mut subscriber = subscriber;
            while let Some(message) = subscriber.next().await {
                if let Some(item) = forward(message)
                    && items.send(item).await.is_err()
                {
                    return;
                }
            }
        }))
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        for held in self.held.values() {
            held.task.abort();
        }
    }
}

fn member_key(router: &str) -> String {
    format!("member.{router}")
}

fn partition_key(partition: u32) -> String {
    format!("partition.{partition}")
}

/// The bucket's stream, built here as `create_key_value` would (see `setup.rs` on why), in
/// memory: leases need not survive a NATS restart, routers take them again within a tick.
async fn open_bucket(js: &Context, replicas: usize) -> Result<kv::Store, BusError> {
    let config = stream::Config {
        name: format!("KV_{ROUTERS_BUCKET}"),
        description: Some("router heartbeats and ingress partition leases".to_owned()),
        subjects: vec![format!("$KV.{ROUTERS_BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: LEASE_TTL,
        storage: StorageType::Memory,
        num_replicas: replicas,
        allow_rollup: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|e| unavailable("creating the routers bucket", e))?;
    js.get_key_value(ROUTERS_BUCKET)
        .await
        .map_err(|e| unavailable("opening the routers bucket", e))
}
