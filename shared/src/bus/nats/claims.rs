//! messageId ownership in the `CHAT_MSGIDS` bucket: the first sender of an id owns it, and the
//! claim remembers where the message was stored, so a resend is answered with the first seq
//! long after JetStream's duplicate window has passed.

use async_nats::jetstream::kv::{self, CreateErrorKind};

use super::errors::unavailable;
use super::payload::{Claim, decode, encode};
use crate::bus::{BusError, INTERNAL_VERSION};
use crate::protocol::ChatMessage;

/// Longest messageId the bus accepts as a key (client ids are ≤ 64, bot replies add `-bot`).
const MAX_ID_LEN: usize = 256;
/// Reads of a claim after losing a creation race (a lost race is followed by a read that finds
/// the winner, so more than two means the bucket misbehaves).
const CLAIM_ATTEMPTS: usize = 3;

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

/// Reads the claim of the message's id, creating it for its sender when absent.
pub async fn claim(store: &kv::Store, message: &ChatMessage) -> Result<ClaimState, BusError> {
    let owner = &message.from.id;
    for _ in 0..CLAIM_ATTEMPTS {
        if let Some(existing) = read(store, &message.message_id).await? {
            return Ok(judge(&existing, owner));
        }
        let fresh = Claim {
            v: INTERNAL_VERSION,
            owner: owner.clone(),
            guild: message.guild_id.clone(),
            seq: 0,
        };
        match store.create(&message.message_id, encode(&fresh)?).await {
            Ok(_) => return Ok(ClaimState::Pending),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
            Err(e) => return Err(unavailable("claiming a messageId", e)),
        }
    }
    Err(BusError::Unavailable(
        "the messageId claim could not be read after it was taken".into(),
    ))
}

/// Records where the message was stored. A failure is logged, not returned: the entry is in
/// the log, and a resend within the duplicate window is still caught by `Nats-Msg-Id`.
pub async fn record_seq(store: &kv::Store, message: &ChatMessage, seq: u64) {
    let claim = Claim {
        v: INTERNAL_VERSION,
        owner: message.from.id.clone(),
        guild: message.guild_id.clone(),
        seq,
    };
    let result = match encode(&claim) {
        Ok(bytes) => store
            .put(&message.message_id, bytes)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = result {
        tracing::warn!(message_id = %message.message_id, seq, %error,
            "could not record the seq of a messageId claim");
    }
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
