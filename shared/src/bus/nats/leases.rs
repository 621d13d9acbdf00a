//! Partition ownership among routers: one writer per guild. Every router heartbeats
//! `member.{router}` in the in-memory bucket `CHAT_ROUTERS` (entries expire after
//! [`LEASE_TTL`]) and holds `partition.{p}` for each partition it serves, by creating the key
//! and then renewing it with its revision every [`TICK`]. What it does with each partition is
//! decided by [`super::ownership_plan`]: it owns its rendezvous share among the live members,
//! asks (`want.{p}.{router}`) for a share partition another router still holds, hands a
//! partition over when its owner asks (key first, subscription one tick later, so the next
//! owner is subscribed before it leaves; both share the queue group `routers` meanwhile, so a
//! send is still taken once), and takes at once, as a stand-in, any partition nobody holds
//! and nobody asks for. It subscribes to `chat.ingress.{p}` only while it holds the lease.
//! Besides the timer, a router ticks at once when it sees a lease or heartbeat deleted or a
//! partition asked for (a watch on the bucket), so handovers take milliseconds.
//!
//! A router told to stop ([`Ownership::run`]'s stop signal, on SIGTERM) unsubscribes, deletes
//! its leases, asks and heartbeat, and the others take its partitions at once. A router that
//! dies stops renewing: its leases expire after [`LEASE_TTL`] and another router takes them on
//! its next tick, so a partition is without a router for at most [`TAKEOVER_BOUND`]; a send
//! there meanwhile finds no responders and is asked again by the submitter (`ingress.rs`)
//! until its time is up, never an ack that was not stored. The fence for the log itself stays
//! `Nats-Expected-Last-Subject-Sequence`: even two routers that both believe they own a
//! partition cannot both append on the same head.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::Context;
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::errors::unavailable;
use super::ownership_plan::{Step, View, plan};
use super::subjects::{ROUTERS_BUCKET, ROUTERS_QUEUE_GROUP, partition_subject};
use crate::bus::{BusError, IngressItem};

/// How long a lease or heartbeat lives without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(4);
/// How often a router renews its leases and looks at the live members.
pub const TICK: Duration = Duration::from_secs(1);
/// Longest time a partition whose owner died is left without a router.
pub const TAKEOVER_BOUND: Duration = Duration::from_secs(6);

/// Turns a partition's raw ingress messages into items on the router's one channel.
pub type Forward = Arc<dyn Fn(async_nats::Message) -> Vec<IngressItem> + Send + Sync>;

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
    /// Partitions this router asked for (its `want` key is up).
    asking: BTreeSet<u32>,
}

struct Held {
    revision: u64,
    /// Forwards the partition's subscription into `items` until told (or dropped) to drain.
    forwarder: Forwarder,
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
            asking: BTreeSet::new(),
        };
        ownership.tick().await?;
        super::connection::round_trip(&ownership.client).await?;
        tracing::info!(router = %ownership.me, partitions = ownership.held.len(),
            "router holds its ingress partitions");
        Ok(ownership)
    }

    /// Renews and rebalances every [`TICK`] (and at once on a change in the bucket) until
    /// `stop` fires or the router drops its ingress stream; then gives every lease back so
    /// that the others take over at once.
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.bucket.watch_all().await.ok();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = self.items.closed() => break,
                _ = ticks.tick() => {}
                change = next_change(&mut changes) => {
                    if !change {
                        continue;
                    }
                    tokio::time::sleep(CHANGE_SETTLE).await;
                }
            }
            if let Err(error) = self.tick().await {
                tracing::warn!(%error, "could not renew the ingress partitions; keeping them");
                // The bucket lives in memory: after a NATS restart it has to be made again.
                match open_bucket(&self.js, self.replicas).await {
                    Ok(bucket) => self.bucket = bucket,
                    Err(error) => tracing::debug!(%error, "routers bucket not back yet"),
                }
                changes = None;
            }
            if changes.is_none() {
                changes = self.bucket.watch_all().await.ok();
            }
        }
        self.release_all().await;
    }

    async fn tick(&mut self) -> Result<(), BusError> {
        self.bucket
            .put(member_key(&self.me), bytes::Bytes::new())
            .await
            .map_err(|e| unavailable("heartbeating a router", e))?;
        let view = self.view().await?;
        for (partition, step) in plan(&view) {
            match step {
                Step::Own => self.hold(partition, true).await,
                Step::KeepStandIn | Step::TakeStandIn => self.hold(partition, false).await,
                Step::HandOver => self.let_go(partition).await,
                Step::Leave => self.stop_asking(partition).await,
            }
        }
        Ok(())
    }

    /// What the bucket shows now, with what this router holds.
    async fn view(&self) -> Result<View, BusError> {
        let mut view = View {
            me: self.me.clone(),
            held: self.held.keys().copied().collect(),
            releasing: (self.held.iter())
                .filter(|(_, h)| h.released.is_some())
                .map(|(p, _)| *p)
                .collect(),
            ..View::default()
        };
        for key in self.keys().await? {
            read_key(&key, &mut view);
        }
        if !view.members.contains(&self.me) {
            view.members.push(self.me.clone());
        }
        Ok(view)
    }

    /// Every live key of the bucket.
    async fn keys(&self) -> Result<Vec<String>, BusError> {
        let mut keys = self
            .bucket
            .keys()
            .await
            .map_err(|e| unavailable("listing the routers", e))?;
        let mut all = Vec::new();
        while let Some(key) = keys.next().await {
            all.push(key.map_err(|e| unavailable("listing the routers", e))?);
        }
        Ok(all)
    }

    /// Creates or renews the lease of a partition this router serves; when another router
    /// holds one it owns (`ask`), says so with its `want` key.
    async fn hold(&mut self, partition: u32, ask: bool) {
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
                self.stop_asking(partition).await;
                if let Some(forwarder) = self.subscribe(partition).await {
                    tracing::info!(partition, "took an ingress partition");
                    let held = Held {
                        revision,
                        forwarder,
                        released: None,
                    };
                    self.held.insert(partition, held);
                }
            }
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                tracing::debug!(partition, "partition still leased by another router");
                if ask {
                    self.ask_for(partition).await;
                }
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

    /// Stops taking a partition's sends; those already received are still forwarded.
    fn drop_partition(&mut self, partition: u32) {
        if let Some(held) = self.held.remove(&partition) {
            drop(held.forwarder.drain);
        }
    }

    /// Gives every lease, ask and the heartbeat back (the others take the partitions at once),
    /// then, once they had [`HANDOVER_OVERLAP`] to subscribe, drains the subscriptions: the
    /// sends this router has received are forwarded to it and answered. (One the server sent
    /// just before it saw the unsubscribe can be dropped by async-nats; its submitter asks
    /// again, see `submitter.rs`.)
    async fn release_all(&mut self) {
        for (partition, held) in &self.held {
            let _ = self
                .bucket
                .delete_expect_revision(partition_key(*partition), Some(held.revision))
                .await;
        }
        for partition in std::mem::take(&mut self.asking) {
            let _ = self.bucket.delete(want_key(partition, &self.me)).await;
        }
        let _ = self.bucket.delete(member_key(&self.me)).await;
        tokio::time::sleep(HANDOVER_OVERLAP).await;
        let forwarders: Vec<JoinHandle<()>> = (self.held.drain())
            .map(|(_, held)| {
                drop(held.forwarder.drain);
                held.forwarder.task
            })
            .collect();
        let drained = futures::future::join_all(forwarders);
        if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
            tracing::warn!("some ingress subscriptions did not drain in time");
        }
        tracing::info!("router gave its ingress partitions back");
    }

    /// Puts (renews) this router's ask for a partition another router holds.
    async fn ask_for(&mut self, partition: u32) {
        match self
            .bucket
            .put(want_key(partition, &self.me), bytes::Bytes::new())
            .await
        {
            Ok(_) => {
                self.asking.insert(partition);
            }
            Err(error) => tracing::debug!(partition, %error, "could not ask for a partition"),
        }
    }

    async fn stop_asking(&mut self, partition: u32) {
        if self.asking.remove(&partition) {
            let _ = self.bucket.delete(want_key(partition, &self.me)).await;
        }
    }

    async fn subscribe(&self, partition: u32) -> Option<Forwarder> {
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
        let (drain, drained) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut subscriber = subscriber;
            let mut drained = drained;
            let mut draining = false;
            loop {
                let message = tokio::select! {
                    _ = &mut drained, if !draining => {
                        draining = true;
                        // Unsubscribes, then yields what has arrived (not quite all the
                        // server sent before the unsubscribe: see `release_all`).
                        if let Err(error) = subscriber.drain().await {
                            tracing::debug!(partition, %error, "could not drain a partition");
                        }
                        continue;
                    }
                    message = subscriber.next() => message,
                };
                let Some(message) = message else { return };
                for item in forward(message) {
                    if items.send(item).await.is_err() {
                        return;
                    }
                }
            }
        });
        Some(Forwarder { drain, task })
    }
}

/// A partition's forwarding task; dropping `drain` makes it unsubscribe and finish.
struct Forwarder {
    drain: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// How long a stopping router keeps serving after giving its leases back.
const HANDOVER_OVERLAP: Duration = Duration::from_millis(150);
/// Longest wait for a stopping router's subscriptions to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

fn member_key(router: &str) -> String {
    format!("member.{router}")
}

fn partition_key(partition: u32) -> String {
    format!("partition.{partition}")
}

fn want_key(partition: u32, router: &str) -> String {
    format!("want.{partition}.{router}")
}

/// Adds what one key of the bucket says to the view.
fn read_key(key: &str, view: &mut View) {
    if let Some(router) = key.strip_prefix("member.") {
        view.members.push(router.to_owned());
    } else if let Some(partition) = key.strip_prefix("partition.") {
        if let Ok(partition) = partition.parse() {
            view.leased.insert(partition);
        }
    } else if let Some((partition, router)) = key
        .strip_prefix("want.")
        .and_then(|rest| rest.split_once('.'))
        && let Ok(partition) = partition.parse()
    {
        view.wants
            .entry(partition)
            .or_default()
            .insert(router.to_owned());
    }
}

/// How long a tick caused by a change waits for the changes that come with it (a stopping
/// router deletes all its keys one after another).
const CHANGE_SETTLE: Duration = Duration::from_millis(20);

/// Waits for the next change in the bucket that should make a router look again: a deleted
/// lease or heartbeat, or an ask. `false` for anything else; pending forever without a watch
/// (dropped here when it ends, made again after the next tick).
async fn next_change(changes: &mut Option<kv::Watch>) -> bool {
    let Some(watch) = changes.as_mut() else {
        return std::future::pending().await;
    };
    match watch.next().await {
        Some(Ok(entry)) => {
            matches!(entry.operation, Operation::Delete | Operation::Purge)
                || entry.key.starts_with("want.")
        }
        Some(Err(_)) | None => {
            *changes = None;
            false
        }
    }
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
