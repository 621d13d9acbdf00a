//! Sends from gateways to routers: core NATS request/reply on `chat.ingress.{guild}`, routers
//! sharing the work in the queue group `routers`.

use async_nats::{Client, Request, Subject};

use super::NatsBus;
use super::connection::{ensure_connected, round_trip};
use super::decoded::decoded;
use super::errors::{from_request, unavailable};
use super::payload::{DropKind, decode_unversioned, encode};
use super::subjects::{INGRESS_ALL, ROUTERS_QUEUE_GROUP, ingress_subject};
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
        let mut outgoing = Request::new()
            .payload(encode(&request)?)
            .timeout(Some(self.config.ingress_timeout()));
        if let Some(headers) = trace_headers::current_headers() {
            outgoing = outgoing.headers(headers);
        }
        let reply = self
            .client
            .send_request(subject, outgoing)
            .await
            .map_err(|e| from_request("submitting a send", &e))?;
        decode_unversioned(&reply.payload)
    }

    pub(super) async fn ingress_items(&self) -> Result<BoxStream<IngressItem>, BusError> {
        let subscriber = self
            .client
            .queue_subscribe(INGRESS_ALL, ROUTERS_QUEUE_GROUP.to_owned())
            .await
            .map_err(|e| unavailable("subscribing to ingress", e))?;
        round_trip(&self.client).await?;
        let client = self.client.clone();
        Ok(decoded(
            subscriber,
            self.drops.clone(),
            DropKind::Ingress,
            move |request: SendRequest, message| {
                let Some(reply_to) = message.reply else {
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
                })
            },
        ))
    }
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
