//! Sends from gateways to routers: core NATS request/reply on `chat.ingress.{partition}`
//! (partition = hash(guild) mod 16, [`super::partitions`]), each partition served by the one
//! router that holds its lease ([`super::leases`]): one writer per guild. A request carries a
//! batch of sends ([`super::submitter`] coalesces them on the gateway), each saying how long
//! its submitter waits, so a router can drop what nobody waits for any more; the reply carries
//! one outcome per send, sent once the last of them is known.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, Message, Subject};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::NatsBus;
use super::connection::ensure_connected;
use super::leases::{Forward, Ownership};
use super::payload::{DropCounters, DropKind, IngressAnswers, IngressBatch, decode, encode};
use super::subjects::ingress_subject;
use super::trace_headers;
use crate::bus::{
    Answer, BoxStream, BusError, INTERNAL_VERSION, IngressItem, IngressReply, SendOutcome,
    SendRequest,
};
use crate::protocol::ErrorCode;

impl NatsBus {
    #[tracing::instrument(name = "bus.submit", skip_all,
        fields(guild = request.guild_id.as_deref().unwrap_or(""), user = %request.sender.id))]
    pub(super) fn enqueue_request(&self, request: SendRequest) -> Result<Answer, BusError> {
        ensure_connected(&self.client)?;
        let subject = ingress_subject(request.guild_id.as_deref());
        self.submitter.enqueue(
            &subject,
            with_message_id(request),
            self.config.ingress_timeout(),
        )
    }

    /// The sends of the partitions this router owns (see [`super::leases`]), in one stream.
    pub(super) async fn ingress_items(&self) -> Result<BoxStream<IngressItem>, BusError> {
        let (tx, rx) = mpsc::channel(INGRESS_BUFFER);
        let client = self.client.clone();
        let drops = self.drops.clone();
        let forward: Forward = Arc::new(move |message| to_items(&client, &drops, message));
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

/// `request` with a messageId: its own, or a fresh one (as the router would give it). The
/// submitter may ask a batch again (see [`super::submitter`]); with an id, a router that
/// stored the first copy answers its ack again instead of storing it twice.
fn with_message_id(mut request: SendRequest) -> SendRequest {
    if request.message_id.is_none() {
        request.message_id = Some(ulid::Ulid::new().to_string());
    }
    request
}

/// How a router stops its partition ownership: the stop signal and the ownership task.
pub(super) type IngressStop = parking_lot::Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>;

/// Longest wait for the leases to be given back on stop.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends taken from the partitions' subscriptions and not yet read by the router.
const INGRESS_BUFFER: usize = 1024;

/// The sends of one ingress message as items (none, counted, when it does not decode or
/// cannot be answered). Their answers are collected and sent back as one reply.
fn to_items(client: &Client, drops: &DropCounters, message: Message) -> Vec<IngressItem> {
    let batch: IngressBatch = match decode(&message.payload) {
        Ok(batch) => batch,
        Err(error) => {
            drops.record(DropKind::Ingress, message.subject.as_str(), &error);
            return Vec::new();
        }
    };
    let Some(reply_to) = message.reply.clone() else {
        tracing::warn!(subject = %message.subject, "dropping sends with no reply subject");
        return Vec::new();
    };
    let answers = Answers::new(client.clone(), reply_to, batch.sends.len());
    let now = Instant::now();
    batch
        .sends
        .into_iter()
        .enumerate()
        .map(|(index, send)| IngressItem {
            trace: trace_headers::extract_fields(&send.trace),
            deadline: now.checked_add(Duration::from_millis(send.timeout_ms)),
            request: send.request,
            reply: Box::new(AnswerSlot {
                answers: answers.clone(),
                index,
                answered: false,
            }),
        })
        .collect()
}

/// The outcomes of one ingress message's sends, sent back as one [`IngressAnswers`] once
/// every send has one.
struct Answers {
    client: Client,
    reply_to: Subject,
    outcomes: parking_lot::Mutex<Outcomes>,
}

impl Answers {
    fn new(client: Client, reply_to: Subject, sends: usize) -> Arc<Self> {
        Arc::new(Answers {
            client,
            reply_to,
            outcomes: parking_lot::Mutex::new(Outcomes::new(sends)),
        })
    }

    /// Records send `index`'s outcome; the complete answer when it was the last one missing.
    fn fill(&self, index: usize, outcome: SendOutcome) -> Option<IngressAnswers> {
        let outcomes = self.outcomes.lock().fill(index, outcome)?;
        Some(IngressAnswers {
            v: INTERNAL_VERSION,
            outcomes,
        })
    }

    async fn send(&self, answers: IngressAnswers) {
        let sent = match encode(&answers) {
            Ok(payload) => self
                .client
                .publish(self.reply_to.clone(), payload)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = sent {
            tracing::warn!(%error, "could not answer sends");
        }
    }
}

/// The way back for one send of a batch. Dropped unanswered (a router that drops an expired
/// send, or stops), it answers `server_error`, so the batch's other sends are still answered.
struct AnswerSlot {
    answers: Arc<Answers>,
    index: usize,
    answered: bool,
}

#[async_trait::async_trait]
impl IngressReply for AnswerSlot {
    async fn reply(mut self: Box<Self>, outcome: SendOutcome) {
        self.answered = true;
        if let Some(complete) = self.answers.fill(self.index, outcome) {
            self.answers.send(complete).await;
        }
    }
}

impl Drop for AnswerSlot {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        if let Some(complete) = self.answers.fill(self.index, Err(ErrorCode::ServerError)) {
            // Dropped outside a runtime (a process shutting down), nobody can be answered.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let answers = self.answers.clone();
                runtime.spawn(async move { answers.send(complete).await });
            }
        }
    }
}

/// One outcome per send of a batch, as they come in.
struct Outcomes(Vec<Option<SendOutcome>>);

impl Outcomes {
    fn new(sends: usize) -> Self {
        Outcomes(vec![None; sends])
    }

    /// Records send `index`'s outcome (the first one counts); all of them, in send order,
    /// when this was the last one missing.
    fn fill(&mut self, index: usize, outcome: SendOutcome) -> Option<Vec<SendOutcome>> {
        let slot = self.0.get_mut(index)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(outcome);
        if self.0.iter().any(Option::is_none) {
            return None;
        }
        Some(self.0.iter_mut().filter_map(Option::take).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::SendAck;

    fn ack(seq: u64) -> SendOutcome {
        Ok(SendAck {
            message_id: format!("m{seq}"),
            seq,
        })
    }

    #[test]
    fn a_batch_is_answered_once_every_send_has_its_outcome() {
        // (sends, fills in arrival order, which fill completes the answer)
        let cases: [(usize, &[usize], Option<usize>); 5] = [
            (1, &[0], Some(0)),
            (3, &[2, 0, 1], Some(2)),
            (3, &[0, 0, 1], None),
            (2, &[1, 5, 0], Some(2)),
            (2, &[0], None),
        ];
        for (sends, fills, completes_at) in cases {
            let mut outcomes = Outcomes::new(sends);
            let mut completed = None;
            for (k, index) in fills.iter().enumerate() {
                if let Some(all) = outcomes.fill(*index, ack(*index as u64)) {
                    assert!(completed.is_none(), "answered twice: {fills:?}");
                    let seqs: Vec<u64> = all.iter().map(|o| o.as_ref().unwrap().seq).collect();
                    assert_eq!(seqs, (0..sends as u64).collect::<Vec<_>>(), "{fills:?}");
                    completed = Some(k);
                }
            }
            assert_eq!(completed, completes_at, "{sends} sends, fills {fills:?}");
        }
    }
}
