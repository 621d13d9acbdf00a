//! messageId ownership in the `CHAT_MSGIDS` bucket: the first sender of an id owns it, and the
//! claim remembers where the message was stored, so a resend is answered with the first seq
//! long after JetStream's duplicate window has passed. On the hot path an append costs one
//! request here for all its messages, whatever their number: a batch direct get of the
//! newest value of each key (`multi_last`, nats-server ≥ 2.11), answered by one message per
//! claim found and an end-of-batch marker. Nothing waits for a write: within the duplicate
//! window `Nats-Msg-Id` is the authority, and the claims of a stored record are written in the
//! background, with one acknowledgement for all of them (see [`record_seqs`]).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::{Client, HeaderMap, jetstream};
use futures::StreamExt;

use super::errors::unavailable;
use super::payload::{Claim, decode, encode};
use super::subjects::CLAIMS_BUCKET;
use crate::bus::{BusError, INTERNAL_VERSION};
use crate::protocol::ChatMessage;

/// Longest messageId the bus accepts as a key (client ids are ≤ 64, bot replies add `-bot`).
const MAX_ID_LEN: usize = 256;
/// Keys asked for in one batch direct get (a router batch holds at most 128 sends).
const KEYS_PER_READ: usize = 256;
/// The status that ends a batch direct get's answers, and the one when no key had a value.
const END_OF_BATCH: u16 = 204;
const NO_RESULTS: u16 = 404;
/// How long the answers to one batch read may take in all.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// What the claim of a messageId says about an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// Another sender owns the id.
    Foreign,
    /// Already appended by this sender, at this seq.
    Stored(u64),
    /// Claimed by this sender and not yet appended (just now, or by a process that stopped in
    /// between): append it, `Nats-Msg-Id` catches a second copy within the duplicate window.
    Pending,
}

/// Whether `id` can be a key of the bucket (and a `Nats-Msg-Id`).
pub fn is_valid_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What the durable claims of the messages' ids say, in their order, read with one batch
/// direct get per [`KEYS_PER_READ`] ids and without writing anything (a claim that does not
/// decode fails only its own message; a failed read, all of them): an absent claim is
/// [`ClaimState::Pending`] (a fresh id, or one stored so recently that its claim is still
/// being written — `Nats-Msg-Id` catches that copy, and the owner of the first copy is checked
/// then, see `log.rs`).
pub async fn check_all(
    client: &Client,
    messages: &[&ChatMessage],
) -> Result<Vec<Result<ClaimState, BusError>>, BusError> {
    let keys: Vec<String> = messages
        .iter()
        .map(|m| claim_subject(&m.message_id))
        .collect();
    let mut found = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_READ) {
        let read = tokio::time::timeout(READ_TIMEOUT, read_newest(client, chunk, &mut found));
        read.await
            .map_err(|_| unavailable("reading messageId claims", "no end of batch in time"))??;
    }
    Ok(messages
        .iter()
        .zip(&keys)
        .map(|(message, key)| match found.get(key) {
            Some(Ok(claim)) => Ok(judge(claim, &message.from.id)),
            Some(Err(error)) => Err(error.clone()),
            None => Ok(ClaimState::Pending),
        })
        .collect())
}

/// Records, in the background, who owns each message's id and where it was stored: the
/// durable record that answers a resend (or refuses another sender) after JetStream's
/// duplicate window has passed. Nobody waits for it: within the window `Nats-Msg-Id` already
/// answers both. Every claim but the last goes out without a reply subject (JetStream stores
/// it and answers nothing); the last is an acknowledged publish, and since one connection's
/// publishes to a stream are stored in order, its ack says the stream took them all. A failure
/// is logged (the entries are in the log either way).
pub fn record_seqs(js: &jetstream::Context, client: &Client, stored: Vec<(&ChatMessage, u64)>) {
    let claims: Vec<(String, bytes::Bytes)> = stored
        .into_iter()
        .filter_map(|(message, seq)| {
            let claim = Claim {
                v: INTERNAL_VERSION,
                owner: message.from.id.clone(),
                guild: message.guild_id.clone(),
                seq,
            };
            match encode(&claim) {
                Ok(bytes) => Some((claim_subject(&message.message_id), bytes)),
                Err(error) => {
                    tracing::warn!(message_id = %message.message_id, %error,
                        "could not encode a claim");
                    None
                }
            }
        })
        .collect();
    if claims.is_empty() {
        return;
    }
    let (js, client) = (js.clone(), client.clone());
    tokio::spawn(async move {
        if let Err(error) = write_claims(&js, &client, claims).await {
            tracing::warn!(%error, "could not record the seqs of messageId claims");
        }
    });
}

async fn write_claims(
    js: &jetstream::Context,
    client: &Client,
    mut claims: Vec<(String, bytes::Bytes)>,
) -> Result<(), String> {
    let Some((last_subject, last_bytes)) = claims.pop() else {
        return Ok(());
    };
    for (subject, bytes) in claims {
        client
            .publish(subject, bytes)
            .await
            .map_err(|e| e.to_string())?;
    }
    let ack = js
        .publish(last_subject, last_bytes)
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map(|_| ()).map_err(|e| e.to_string())
}

/// The subject a bucket key is stored under.
fn claim_subject(message_id: &str) -> String {
    format!("$KV.{CLAIMS_BUCKET}.{message_id}")
}

/// One batch direct get of the newest message on each of `keys` (ADR-31 `multi_last`): one
/// answer per key that has one, then a status message (204 end of batch; 404 when none had
/// any). A deleted or purged key (a KV marker) counts as absent.
async fn read_newest(
    client: &Client,
    keys: &[String],
    found: &mut HashMap<String, Result<Claim, BusError>>,
) -> Result<(), BusError> {
    let doing = "reading messageId claims";
    let request = serde_json::json!({ "multi_last": keys, "batch": keys.len() });
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| unavailable(doing, e))?;
    client
        .publish_with_reply(direct_get_subject(), inbox, request.to_string().into())
        .await
        .map_err(|e| unavailable(doing, e))?;
    while let Some(answer) = answers.next().await {
        match answer.status.map(|status| status.as_u16()) {
            None | Some(200) => {}
            Some(END_OF_BATCH) | Some(NO_RESULTS) => return Ok(()),
            Some(status) => return Err(unavailable(doing, format!("status {status}"))),
        }
        let headers = answer.headers.unwrap_or_default();
        let Some(subject) = header(&headers, "Nats-Subject") else {
            continue;
        };
        if header(&headers, "KV-Operation").is_some_and(|op| op == "DEL" || op == "PURGE") {
            continue;
        }
        found.insert(subject.to_owned(), decode::<Claim>(&answer.payload));
    }
    Err(unavailable(doing, "the answers stopped before the end"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.as_str())
}

/// The direct get API subject of the bucket's stream.
fn direct_get_subject() -> String {
    format!("$JS.API.DIRECT.GET.KV_{CLAIMS_BUCKET}")
}

fn judge(claim: &Claim, owner: &str) -> ClaimState {
    if claim.owner != owner {
        ClaimState::Foreign
    } else if claim.seq > 0 {
        ClaimState::Stored(claim.seq)
    } else {
        ClaimState::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(owner: &str, seq: u64) -> Claim {
        Claim {
            v: INTERNAL_VERSION,
            owner: owner.into(),
            guild: "g".into(),
            seq,
        }
    }

    #[test]
    fn judging_a_claim() {
        assert_eq!(judge(&claim("a", 5), "b"), ClaimState::Foreign);
        assert_eq!(judge(&claim("a", 5), "a"), ClaimState::Stored(5));
        assert_eq!(judge(&claim("a", 0), "a"), ClaimState::Pending);
    }

    #[test]
    fn message_ids_must_be_plain_tokens() {
        assert!(is_valid_message_id("01HX-abc_9-bot"));
        assert!(!is_valid_message_id(""));
        assert!(!is_valid_message_id("a.b"));
        assert!(!is_valid_message_id("a b"));
    }
}
