//! messageId ownership in the `CHAT_MSGIDS` bucket: the first sender of an id owns it, and the
//! claim remembers where the message was stored, so a resend is answered with the first seq
//! long after JetStream's duplicate window has passed. On the hot path an append costs one
//! direct get here (no write is awaited): within the duplicate window `Nats-Msg-Id` is the
//! authority, and the claim is written in the background once the entry is stored.

use async_nats::jetstream::{self, kv};

use super::errors::unavailable;
use super::payload::{Claim, decode, encode};
use super::subjects::CLAIMS_BUCKET;
use crate::bus::{BusError, INTERNAL_VERSION};
use crate::protocol::ChatMessage;

/// Longest messageId the bus accepts as a key (client ids are ≤ 64, bot replies add `-bot`).
const MAX_ID_LEN: usize = 256;

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

/// What the durable claim of the message's id says, read with one direct get and without
/// writing anything: an absent claim is [`ClaimState::Pending`] (a fresh id, or one stored so
/// recently that its claim is still being written — `Nats-Msg-Id` catches that copy, and the
/// owner of the first copy is checked then, see `log.rs`).
pub async fn check(store: &kv::Store, message: &ChatMessage) -> Result<ClaimState, BusError> {
    Ok(match read(store, &message.message_id).await? {
        Some(existing) => judge(&existing, &message.from.id),
        None => ClaimState::Pending,
    })
}

/// Records, in the background, who owns the message's id and where it was stored: the durable
/// record that answers a resend (or refuses another sender) after JetStream's duplicate window
/// has passed. Nobody waits for it: within the window `Nats-Msg-Id` already answers both. A
/// failure is logged (the entry is in the log either way).
pub fn record_seq(js: &jetstream::Context, message: &ChatMessage, seq: u64) {
    let claim = Claim {
        v: INTERNAL_VERSION,
        owner: message.from.id.clone(),
        guild: message.guild_id.clone(),
        seq,
    };
    let bytes = match encode(&claim) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(message_id = %message.message_id, %error, "could not encode a claim");
            return;
        }
    };
    let js = js.clone();
    let subject = claim_subject(&message.message_id);
    let message_id = message.message_id.clone();
    tokio::spawn(async move {
        let result = match js.publish(subject, bytes).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(%message_id, seq, %error,
                "could not record the seq of a messageId claim");
        }
    });
}

/// The subject a bucket key is stored under.
fn claim_subject(message_id: &str) -> String {
    format!("$KV.{CLAIMS_BUCKET}.{message_id}")
}

async fn read(store: &kv::Store, message_id: &str) -> Result<Option<Claim>, BusError> {
    let bytes = store
        .get(message_id)
        .await
        .map_err(|e| unavailable("reading a messageId claim", e))?;
    bytes.map(|b| decode::<Claim>(&b)).transpose()
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
