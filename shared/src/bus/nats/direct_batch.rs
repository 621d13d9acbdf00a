//! Batch direct gets (ADR-31, nats-server ≥ 2.11): one request to a stream's
//! `$JS.API.DIRECT.GET.<stream>`, answered by one message per stored message found and a
//! status message that ends the batch (204; 404 when nothing matched). Nothing is created on
//! the server (a pull consumer costs a create, a fetch and a delete), so a read costs one
//! request whatever the number of messages. Used for the messageId claims (`multi_last`) and
//! for reading a guild log forward (`seq` + `next_by_subj`).

use std::time::Duration;

use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures::StreamExt;

use super::errors::unavailable;
use crate::bus::BusError;

/// The status that ends a batch's answers, and the one when nothing matched.
const END_OF_BATCH: u16 = 204;
const NO_RESULTS: u16 = 404;
/// How long the answers to one batch may take in all.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// One stored message of a batch.
pub struct Found {
    pub seq: u64,
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Sends `request` (the ADR-31 JSON) to `stream`'s direct get API and collects the answers
/// up to the end of the batch; `doing` names the read in errors.
pub async fn batch_get(
    client: &Client,
    stream: &str,
    request: serde_json::Value,
    doing: &'static str,
) -> Result<Vec<Found>, BusError> {
    tokio::time::timeout(READ_TIMEOUT, collect(client, stream, request, doing))
        .await
        .map_err(|_| unavailable(doing, "no end of batch in time"))?
}

async fn collect(
    client: &Client,
    stream: &str,
    request: serde_json::Value,
    doing: &'static str,
) -> Result<Vec<Found>, BusError> {
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| unavailable(doing, e))?;
    client
        .publish_with_reply(
            format!("$JS.API.DIRECT.GET.{stream}"),
            inbox,
            request.to_string().into(),
        )
        .await
        .map_err(|e| unavailable(doing, e))?;
    let mut found = Vec::new();
    while let Some(answer) = answers.next().await {
        match answer.status.map(|status| status.as_u16()) {
            None | Some(200) => {}
            Some(END_OF_BATCH) | Some(NO_RESULTS) => return Ok(found),
            Some(status) => return Err(unavailable(doing, format!("status {status}"))),
        }
        let headers = answer.headers.unwrap_or_default();
        let Some(subject) = header(&headers, "Nats-Subject").map(str::to_owned) else {
            continue;
        };
        let seq = header(&headers, "Nats-Sequence")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        found.push(Found {
            seq,
            subject,
            headers,
            payload: answer.payload,
        });
    }
    Err(unavailable(doing, "the answers stopped before the end"))
}

/// A header's value.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.as_str())
}
