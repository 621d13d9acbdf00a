//! A gateway's sends to the routers, coalesced per ingress partition (a group commit on the
//! way in): each partition has one task here that keeps at most [`IN_FLIGHT`] requests on
//! `chat.ingress.{partition}` open, and every send that queued meanwhile goes out in the next
//! one, as one [`IngressBatch`] of at most [`MAX_BATCH`]. Under light load a batch is one send
//! and nothing waits; under load the request, its reply and the router's work per message
//! fall with the batch size.
//!
//! Each send keeps its own deadline (`INGRESS_TIMEOUT_MS` from its submit), its own trace
//! context and its own answer. A batch that finds no router on its partition (a handover in
//! progress) is asked again, with a short backoff, while any of its sends is still waited for:
//! nobody received it, so asking again cannot store anything twice. A batch that gets no
//! answer within the partition's [`Patience`] (then twice that, and so on) is asked again
//! too: core NATS may lose a request, and does at a handover, where async-nats drops what
//! arrives for a subscription it has just drained before the server has seen the
//! unsubscribe. That is safe because every send carries its messageId (the bus gives one to a
//! send that has none), so a router that already stored it answers the first ack again. The
//! sends of one connection keep their order: one task per partition publishes its batches in
//! queue order on one NATS connection, which the router reads in that order (a batch asked
//! again may land after the one behind it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::{Client, Request, RequestErrorKind};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use super::errors::from_request;
use super::patience::Patience;
use super::payload::{IngressAnswers, IngressBatch, IngressSend, WireTrace, decode, encode};
use super::trace_headers;
use crate::bus::{Answer, BusError, INTERNAL_VERSION, SendOutcome, SendRequest};
use crate::protocol::ErrorCode;

/// Requests one partition's task keeps open at once.
const IN_FLIGHT: usize = 2;
/// Most sends in one request (two open: as many as a router queues per guild, so the
/// router refuses a guild's overflow only when several gateways flood it).
const MAX_BATCH: usize = 512;
/// Most payload bytes in one request, estimated (NATS refuses messages over 1 MiB).
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Sends queued for one partition and not yet taken into a batch; a send that finds the queue
/// full is refused `rate_limited` at once instead of waiting behind it.
const QUEUE: usize = 4096;
/// First wait before asking again when no router serves the partition (a handover).
const NO_RESPONDERS_FIRST_PAUSE: Duration = Duration::from_millis(25);
/// Longest wait between two such attempts.
const NO_RESPONDERS_MAX_PAUSE: Duration = Duration::from_millis(250);

type Outcome = Result<SendOutcome, BusError>;

/// A send waiting for its batch.
struct Queued {
    request: SendRequest,
    trace: WireTrace,
    deadline: Instant,
    answer: oneshot::Sender<Outcome>,
}

/// The per-partition queues of one process (created on a partition's first send).
pub struct Submitter {
    client: Client,
    queues: parking_lot::Mutex<HashMap<String, mpsc::Sender<Queued>>>,
}

impl Submitter {
    pub fn new(client: Client) -> Self {
        Submitter {
            client,
            queues: parking_lot::Mutex::default(),
        }
    }

    /// Queues `request` on `subject` (its place in the partition's order taken before this
    /// returns); the answer waits until `timeout` has passed.
    pub fn enqueue(
        &self,
        subject: &str,
        request: SendRequest,
        timeout: Duration,
    ) -> Result<Answer, BusError> {
        let deadline = Instant::now() + timeout;
        let (answer, answered) = oneshot::channel();
        let queued = Queued {
            request,
            trace: trace_headers::current_fields(),
            deadline,
            answer,
        };
        match self.queue(subject).try_send(queued) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Ok(Box::pin(std::future::ready(Ok(Err(
                    ErrorCode::RateLimited,
                )))));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(BusError::Unavailable("the ingress queue stopped".into()));
            }
        }
        Ok(Box::pin(async move {
            match tokio::time::timeout_at(deadline.into(), answered).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(BusError::Unavailable("a send was not answered".into())),
                Err(_) => Err(BusError::Timeout),
            }
        }))
    }

    /// The queue of `subject`, with its task started on first use.
    fn queue(&self, subject: &str) -> mpsc::Sender<Queued> {
        let mut queues = self.queues.lock();
        if let Some(queue) = queues.get(subject).filter(|q| !q.is_closed()) {
            return queue.clone();
        }
        let (queue, queued) = mpsc::channel(QUEUE);
        tokio::spawn(run_partition(
            self.client.clone(),
            subject.to_owned(),
            queued,
        ));
        queues.insert(subject.to_owned(), queue.clone());
        queue
    }
}

/// One partition's task: batches what queued while its requests were open, until every
/// sender is gone.
async fn run_partition(client: Client, subject: String, mut queued: mpsc::Receiver<Queued>) {
    let patience = parking_lot::Mutex::new(Patience::default());
    let mut open = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(()) = open.next(), if !open.is_empty() => {}
            first = queued.recv(), if open.len() < IN_FLIGHT => {
                let Some(first) = first else { break };
                let batch = take_batch(first, &mut queued);
                open.push(send_batch(&client, &subject, &patience, batch));
            }
        }
    }
    while open.next().await.is_some() {}
}

/// `first` and what queued behind it, within [`MAX_BATCH`] and [`MAX_BATCH_BYTES`].
fn take_batch(first: Queued, queued: &mut mpsc::Receiver<Queued>) -> Vec<Queued> {
    let mut bytes = estimated_bytes(&first);
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        let Ok(next) = queued.try_recv() else { break };
        bytes += estimated_bytes(&next);
        batch.push(next);
    }
    batch
}

/// A send's share of a batch's payload, over-estimated (the text, its ids, the sender).
fn estimated_bytes(queued: &Queued) -> usize {
    const FIELDS: usize = 512;
    let request = &queued.request;
    FIELDS
        + request.text.as_deref().map_or(0, str::len)
        + request.sender.id.len()
        + request.sender.name.len()
}

/// Sends one batch and hands each send its answer.
async fn send_batch(
    client: &Client,
    subject: &str,
    patience: &parking_lot::Mutex<Patience>,
    batch: Vec<Queued>,
) {
    let now = Instant::now();
    // A send whose submitter stopped waiting is not sent at all.
    let batch: Vec<Queued> = batch
        .into_iter()
        .filter(|q| q.deadline > now && !q.answer.is_closed())
        .collect();
    if batch.is_empty() {
        return;
    }
    // Each request moves into the payload; only its deadline and way back stay here.
    let mut deadlines = Vec::with_capacity(batch.len());
    let mut answers = Vec::with_capacity(batch.len());
    let sends = batch
        .into_iter()
        .map(|q| {
            deadlines.push(q.deadline);
            answers.push(q.answer);
            IngressSend {
                request: q.request,
                timeout_ms: 0,
                trace: q.trace,
            }
        })
        .collect();
    let mut batch = IngressBatch {
        v: INTERNAL_VERSION,
        sends,
    };
    let outcomes = request(client, subject, patience, &mut batch, &deadlines).await;
    hand_out(answers, outcomes);
}

/// Asks until answered, or until the last send's submitter stops waiting; each attempt tells
/// the router how long each send is still waited for.
async fn request(
    client: &Client,
    subject: &str,
    estimate: &parking_lot::Mutex<Patience>,
    batch: &mut IngressBatch,
    deadlines: &[Instant],
) -> Result<Vec<SendOutcome>, BusError> {
    let last_deadline = deadlines.iter().copied().max().unwrap_or_else(Instant::now);
    let mut pause = NO_RESPONDERS_FIRST_PAUSE;
    let mut patience = estimate.lock().current();
    let mut first_attempt = true;
    loop {
        let now = Instant::now();
        for (send, deadline) in batch.sends.iter_mut().zip(deadlines) {
            send.timeout_ms = millis(deadline.saturating_duration_since(now));
        }
        let left = last_deadline.saturating_duration_since(now);
        let wait = left.min(patience);
        let outgoing = Request::new().payload(encode(&*batch)?).timeout(Some(wait));
        match client.send_request(subject.to_owned(), outgoing).await {
            // Nobody took the batch (its partition is between routers): nothing happened, so
            // it is safe to ask again.
            Err(e) if e.kind() == RequestErrorKind::NoResponders && left > pause => {
                tracing::debug!(%subject, "no router on the partition yet; asking again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(NO_RESPONDERS_MAX_PAUSE);
            }
            // Lost on the way, or a router stalled: the messageIds make asking again safe.
            Err(e) if e.kind() == RequestErrorKind::TimedOut && wait < left => {
                tracing::debug!(%subject, waited = ?wait, "no answer yet; asking again");
                patience *= 2;
                first_attempt = false;
            }
            Err(e) => return Err(from_request("submitting sends", &e)),
            Ok(reply) => {
                if first_attempt {
                    estimate.lock().observe(now.elapsed());
                }
                return decode::<IngressAnswers>(&reply.payload).map(|a| a.outcomes);
            }
        }
    }
}

/// Gives each send its outcome (all of them the error, when the batch failed as a whole).
fn hand_out(answers: Vec<oneshot::Sender<Outcome>>, outcomes: Result<Vec<SendOutcome>, BusError>) {
    let outcomes = outcomes.and_then(|outcomes| {
        if outcomes.len() == answers.len() {
            Ok(outcomes)
        } else {
            Err(BusError::BadPayload(format!(
                "{} answers to {} sends",
                outcomes.len(),
                answers.len()
            )))
        }
    });
    match outcomes {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(Ok(outcome));
            }
        }
        Err(error) => {
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::SendAck;

    fn queued() -> (Queued, oneshot::Receiver<Outcome>) {
        queued_text("hi")
    }

    fn queued_text(text: &str) -> (Queued, oneshot::Receiver<Outcome>) {
        let (answer, answered) = oneshot::channel();
        let request = SendRequest {
            v: INTERNAL_VERSION,
            sender: crate::protocol::identity::UserInfo::new(
                "u",
                "u",
                crate::protocol::identity::Role::Member,
            ),
            guild_id: Some("g".into()),
            text: Some(text.into()),
            admin_only: false,
            request_bot: false,
            message_id: None,
            member_verified: true,
        };
        let queued = Queued {
            request,
            trace: WireTrace::default(),
            deadline: Instant::now(),
            answer,
        };
        (queued, answered)
    }

    fn ack(seq: u64) -> SendOutcome {
        Ok(SendAck {
            message_id: format!("m{seq}"),
            seq,
        })
    }

    #[test]
    fn each_send_gets_its_own_outcome_or_the_batchs_error() {
        let wrong_count = Err(BusError::BadPayload("2 answers to 3 sends".into()));
        type Answers = Result<Vec<SendOutcome>, BusError>;
        let cases: [(Answers, Vec<Outcome>); 3] = [
            (
                Ok(vec![ack(1), Err(ErrorCode::RateLimited), ack(3)]),
                vec![Ok(ack(1)), Ok(Err(ErrorCode::RateLimited)), Ok(ack(3))],
            ),
            (
                Ok(vec![ack(1), ack(2)]),
                vec![wrong_count.clone(), wrong_count.clone(), wrong_count],
            ),
            (
                Err(BusError::Timeout),
                vec![
                    Err(BusError::Timeout),
                    Err(BusError::Timeout),
                    Err(BusError::Timeout),
                ],
            ),
        ];
        for (answers, expected) in cases {
            let (batch, mut answered): (Vec<_>, Vec<_>) = (0..3).map(|_| queued()).unzip();
            hand_out(batch.into_iter().map(|q| q.answer).collect(), answers);
            let got: Vec<String> = answered
                .iter_mut()
                .map(|rx| format!("{:?}", rx.try_recv().expect("answered")))
                .collect();
            let want: Vec<String> = expected.iter().map(|a| format!("{a:?}")).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_batch_stops_at_its_count_or_its_bytes() {
        let long = "x".repeat(4_000);
        // (queued sends, text of each, sizes of the batches taken one after another)
        let cases: [(usize, &str, &[usize]); 3] = [
            (3, "hi", &[3]),
            (MAX_BATCH + 10, "hi", &[MAX_BATCH, 10]),
            (200, long.as_str(), &[117, 83]),
        ];
        for (sends, text, sizes) in cases {
            let (tx, mut rx) = mpsc::channel(QUEUE);
            let mut keep = Vec::new();
            for _ in 0..sends {
                let (queued, answered) = queued_text(text);
                keep.push(answered);
                assert!(tx.try_send(queued).is_ok());
            }
            let mut taken = Vec::new();
            while let Ok(first) = rx.try_recv() {
                taken.push(take_batch(first, &mut rx).len());
            }
            assert_eq!(taken, sizes, "{sends} sends of {} bytes", text.len());
        }
    }
}
