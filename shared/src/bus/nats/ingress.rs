//! Sends from gateways to routers: core NATS request/reply on `chat.ingress.{partition}`
//! (partition = hash(guild) mod 16, [`super::partitions`]), each partition served by the one
//! router that holds its lease ([`super::leases`]): one writer per guild. Each request says in
//! `Chat-Timeout-Ms` how long its submitter waits, so a router can drop what nobody waits for
//! any more. A send that finds no router on its partition (a handover in progress) is asked
//! again, with a short backoff, until the submitter's time is up: nobody received it, so
//! asking again cannot store it twice.

use std::time::{Duration, Instant};

use std::sync::Arc;

use async_nats::{Client, Message, Request, RequestErrorKind, Subject};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::NatsBus;
use super::connection::ensure_connected;
use super::errors::from_request;
use super::leases::{Forward, Ownership};
use super::payload::{DropCounters, DropKind, decode, decode_unversioned, encode};
use super::subjects::ingress_subject;
use super::trace_headers;
use crate::bus::{BoxStream, BusError, IngressItem, IngressReply, SendOutcome, SendRequest};

impl NatsBus {
    #[tracing::instrument(name = "bus.submit", skip_all,
        fields(guild = request.guild_id.as_deref().unwrap_or(""), user = %request.sender.id))]
    pub(super) async fn submit_request(
        &self,
        request: SendRequest,
    ) -> Result<SendOutcome, BusError> {
        ensure_connected(&self.client)?;
        let subject = ingress_subject(request.guild_id.as_deref());
        let payload = encode(&request)?;
        let deadline = Instant::now() + self.config.ingress_timeout();
        let mut pause = NO_RESPONDERS_FIRST_PAUSE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.request_once(&subject, payload.clone(), left).await {
                // Nobody took the send (its partition is between routers): nothing happened,
                // so it is safe to ask again until the submitter's time is up.
                Err(e) if e.kind() == RequestErrorKind::NoResponders && left > pause => {
                    tracing::debug!(%subject, "no router on the partition yet; asking again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(NO_RESPONDERS_MAX_PAUSE);
                }
                Err(e) => return Err(from_request("submitting a send", &e)),
                Ok(reply) => return decode_unversioned(&reply.payload),
            }
        }
    }

    /// One request on the partition's subject, telling the router how long it is waited for.
    async fn request_once(
        &self,
        subject: &str,
        payload: bytes::Bytes,
        timeout: Duration,
    ) -> Result<Message, async_nats::RequestError> {
        let mut headers = trace_headers::current_headers().unwrap_or_default();
        headers.insert(TIMEOUT_HEADER, timeout.as_millis().to_string().as_str());
        let outgoing = Request::new()
            .payload(payload)
            .timeout(Some(timeout))
            .headers(headers);
        self.client.send_request(subject.to_owned(), outgoing).await
    }

    /// The sends of the partitions this router owns (see [`super::leases`]), in one stream.
    pub(super) async fn ingress_items(&self) -> Result<BoxStream<IngressItem>, BusError> {
        let (tx, rx) = mpsc::channel(INGRESS_BUFFER);
        let client = self.client.clone();
        let drops = self.drops.clone();
        let forward: Forward = Arc::new(move |message| to_item(&client, &drops, message));
        let ownership = Ownership::start(
            &self.js,
            self.client.clone(),
            self.config.nats_replicas,
            tx,
            forward,
        )
        .await?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(ownership.run(stopped));
        *self.ingress_stop.lock() = Some((stop, task));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    /// Gives this router's partitions back and waits (a bounded time) until it has.
    pub(super) async fn stop_ingress(&self) {
        let Some((stop, task)) = self.ingress_stop.lock().take() else {
            return;
        };
        let _ = stop.send(());
        if tokio::time::timeout(RELEASE_TIMEOUT, task).await.is_err() {
            tracing::warn!("gave up waiting for the ingress partitions to be given back");
        }
    }
}

/// First wait before asking again when no router serves the partition (a handover).
const NO_RESPONDERS_FIRST_PAUSE: Duration = Duration::from_millis(25);
/// Longest wait between two such attempts.
const NO_RESPONDERS_MAX_PAUSE: Duration = Duration::from_millis(250);

/// How a router stops its partition ownership: the stop signal and the ownership task.
pub(super) type IngressStop = parking_lot::Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>;

/// Longest wait for the leases to be given back on stop.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends taken from the partitions' subscriptions and not yet read by the router.
const INGRESS_BUFFER: usize = 1024;

/// A raw ingress message as an item, or `None` (counted) when it does not decode or cannot
/// be answered.
fn to_item(client: &Client, drops: &DropCounters, message: Message) -> Option<IngressItem> {
    let request: SendRequest = match decode(&message.payload) {
        Ok(request) => request,
        Err(error) => {
            drops.record(DropKind::Ingress, message.subject.as_str(), &error);
            return None;
        }
    };
    let Some(reply_to) = message.reply.clone() else {
        tracing::warn!(subject = %message.subject, "dropping a send with no reply subject");
        return None;
    };
    Some(IngressItem {
        request,
        reply: Box::new(NatsReply {
            client: client.clone(),
            reply_to,
        }),
        trace: trace_headers::extract(message.headers.as_ref()),
        deadline: deadline(message.headers.as_ref()),
    })
}

/// How long the submitter waits for the answer, in milliseconds.
const TIMEOUT_HEADER: &str = "Chat-Timeout-Ms";

/// When the submitter stops waiting, counted from now (the time on the wire is ignored, so it
/// is a little late: a send dropped as expired was certainly answered `server_error`).
fn deadline(headers: Option<&async_nats::HeaderMap>) -> Option<Instant> {
    let millis = headers?.get(TIMEOUT_HEADER)?.as_str().parse::<u64>().ok()?;
    Instant::now().checked_add(Duration::from_millis(millis))
}

/// Answers one send on its reply subject.
struct NatsReply {
    client: Client,
    reply_to: Subject,
}

#[async_trait::async_trait]
impl IngressReply for NatsReply {
    async fn reply(self: Box<Self>, outcome: SendOutcome) {
        let sent = match encode(&outcome) {
            Ok(payload) => self
                .client
                .publish(self.reply_to, payload)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = sent {
            tracing::warn!(%error, "could not answer a send");
        }
    }
}
