//! messageId ownership in the `CHAT_MSGIDS` bucket: the first sender of an id owns it, and the
//! claim remembers where the message was stored, so a resend is answered with the first seq
//! long after JetStream's duplicate window has passed. On the hot path an append costs one
//! request here for all its messages, whatever their number: a batch direct get of the
//! newest value of each key (`multi_last`, nats-server ≥ 2.11), answered by one message per
//! claim found and an end-of-batch marker. Nothing waits for a write: within the duplicate
//! window `Nats-Msg-Id` is the authority, and the claims of a stored record are written in the
//! background, with one acknowledgement for all of them (see [`record_seqs`]).

use std::collections::HashMap;

use async_nats::{Client, jetstream};

use super::direct_batch::{batch_get, header};
use super::payload::{Claim, decode, encode};
use super::subjects::CLAIMS_BUCKET;
use crate::bus::{BusError, INTERNAL_VERSION};
use crate::protocol::ChatMessage;

/// Longest messageId the bus accepts as a key (client ids are ≤ 64, bot replies add `-bot`).
const MAX_ID_LEN: usize = 256;
/// Keys asked for in one batch direct get (a router batch holds at most 128 sends).
const KEYS_PER_READ: usize = 256;

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
        read_newest(client, chunk, &mut found).await?;
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

/// One batch direct get of the newest message on each of `keys` (ADR-31 `multi_last`). A
/// deleted or purged key (a KV marker) counts as absent.
async fn read_newest(
    client: &Client,
    keys: &[String],
    found: &mut HashMap<String, Result<Claim, BusError>>,
) -> Result<(), BusError> {
    let request = serde_json::json!({ "multi_last": keys, "batch": keys.len() });
    let stream = format!("KV_{CLAIMS_BUCKET}");
    for answer in batch_get(client, &stream, request, "reading messageId claims").await? {
        if header(&answer.headers, "KV-Operation").is_some_and(|op| op == "DEL" || op == "PURGE") {
            continue;
        }
        found.insert(answer.subject, decode::<Claim>(&answer.payload));
    }
    Ok(())
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
