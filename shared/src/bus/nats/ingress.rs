//! Sends from gateways to routers: core NATS request/reply on `chat.ingress.{partition}`
//! (partition = hash(guild) mod 16, [`super::partitions`]), each partition served by the one
//! router that holds its lease ([`super::leases`]): one writer per guild. Each request says in `Chat-Timeout-Ms` how
//! long its submitter waits, so a router can drop what nobody waits for any more.

use std::time::{Duration, Instant};

use std::sync::Arc;

use async_nats::{Client, Message, Request, Subject};
use tokio::sync::mpsc;
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
        let timeout = self.config.ingress_timeout();
        let mut headers = trace_headers::current_headers().unwrap_or_default();
        headers.insert(TIMEOUT_HEADER, timeout.as_millis().to_string().as_str());
        let outgoing = Request::new()
            .payload(encode(&request)?)
            .timeout(Some(timeout))
            .headers(headers);
        let reply = self
            .client
            .send_request(subject, outgoing)
            .await
            .map_err(|e| from_request("submitting a send", &e))?;
        decode_unversioned(&reply.payload)
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
        tokio::spawn(ownership.run());
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

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
