//! Presence over core NATS (issue #13): one subject per guild, `presence.{guild}`, MessagePack
//! [`PresenceUpdate`]s. Nothing is stored: each gateway's heartbeats are its TTL'd record, so a
//! killed gateway's users expire at every receiver. A payload that does not decode (or has
//! another version) is yielded as [`Received::Malformed`] for the gateway to count.

use async_nats::Client;
use futures::StreamExt;

use super::connection::{ensure_connected, round_trip};
use super::errors::unavailable;
use super::payload::encode;
use crate::bus::presence::{PresenceBus, PresenceUpdate, Received};
use crate::bus::{BoxStream, BusError, INTERNAL_VERSION};
use crate::protocol::validate::is_valid_guild_id;

/// The presence subject of a (valid) guild.
pub fn presence_subject(guild_id: &str) -> Result<String, BusError> {
    if is_valid_guild_id(guild_id) {
        Ok(format!("presence.{guild_id}"))
    } else {
        Err(BusError::BadPayload(format!(
            "no presence for guild {guild_id:?}"
        )))
    }
}

pub struct NatsPresence {
    client: Client,
}

impl NatsPresence {
    pub fn new(client: Client) -> Self {
        NatsPresence { client }
    }
}

/// Decodes one payload; anything unexpected is malformed.
fn decode(bytes: &[u8]) -> Received {
    match rmp_serde::from_slice::<PresenceUpdate>(bytes) {
        Ok(update) if update.v == INTERNAL_VERSION => Received::Update(update),
        _ => Received::Malformed,
    }
}

#[async_trait::async_trait]
impl PresenceBus for NatsPresence {
    async fn publish(&self, update: &PresenceUpdate) -> Result<(), BusError> {
        ensure_connected(&self.client)?;
        let subject = presence_subject(&update.guild_id)?;
        self.client
            .publish(subject, encode(update)?)
            .await
            .map_err(|e| unavailable("publishing presence", e))
    }

    async fn subscribe(&self, guild_id: &str) -> Result<BoxStream<Received>, BusError> {
        let subscriber = self
            .client
            .subscribe(presence_subject(guild_id)?)
            .await
            .map_err(|e| unavailable("subscribing to presence", e))?;
        round_trip(&self.client).await?;
        Ok(subscriber.map(|message| decode(&message.payload)).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::presence::PresenceBody;

    #[test]
    fn malformed_payloads_are_told_apart() {
        let good = PresenceUpdate {
            v: INTERNAL_VERSION,
            guild_id: "g1".into(),
            from: "gw".into(),
            body: PresenceBody::Heartbeat { seq: 3 },
        };
        let other_version = PresenceUpdate {
            v: INTERNAL_VERSION + 1,
            ..good.clone()
        };
        let bytes = |u: &PresenceUpdate| encode(u).expect("encodes").to_vec();
        let cases = [
            (bytes(&good), Received::Update(good.clone())),
            (bytes(&other_version), Received::Malformed),
            (b"not msgpack".to_vec(), Received::Malformed),
            (Vec::new(), Received::Malformed),
        ];
        for (payload, expected) in cases {
            assert_eq!(decode(&payload), expected);
        }
    }

    #[test]
    fn only_valid_guilds_have_a_subject() {
        assert_eq!(presence_subject("g1").ok().as_deref(), Some("presence.g1"));
        assert!(presence_subject("g.*").is_err());
        assert!(presence_subject("").is_err());
    }
}
