//! Presence over the bus (issue #13): what gateways tell each other about who is online in a
//! guild, and the [`PresenceBus`] that carries it on one subject per guild (`presence.{guild}`
//! on NATS). Each gateway publishes only its own aggregate for a guild (users, not
//! connections): deltas as its users come and go, a full list when asked, and a heartbeat every
//! third of `PRESENCE_TTL_MS` so that a gateway that died is forgotten by the others. Best
//! effort (at most once): a receiver that sees a gap in a gateway's `seq` asks it for its full
//! list again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bus::{BoxStream, BusError};
use crate::protocol::identity::UserInfo;

/// One gateway's word about one guild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceUpdate {
    /// [`crate::bus::INTERNAL_VERSION`]; other versions are dropped as malformed.
    pub v: u8,
    pub guild_id: String,
    /// The sending gateway instance (new at every start, so a restart is a new source).
    pub from: String,
    pub body: PresenceBody,
}

/// What a gateway says about its users in a guild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PresenceBody {
    /// Users that came or went on the sender; `seq` counts the sender's changes in this guild.
    Delta {
        seq: u64,
        joined: Vec<UserInfo>,
        left: Vec<String>,
    },
    /// Every user the sender has in the guild, as of change `seq`.
    Full { seq: u64, users: Vec<UserInfo> },
    /// The sender is alive and its last change in this guild was `seq`.
    Heartbeat { seq: u64 },
    /// Asks one gateway (`to`), or every gateway (`None`), for a `Full`.
    Request { to: Option<String> },
    /// The sender stops: forget its users now.
    Gone,
    /// A member is writing (never stored, never replayed).
    Typing { user: UserInfo },
}

/// What a presence subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Update(PresenceUpdate),
    /// A payload that did not decode, or of another version: dropped (the receiver counts it).
    Malformed,
}

/// The presence channel of a bus: one subject per guild.
#[async_trait::async_trait]
pub trait PresenceBus: Send + Sync + 'static {
    /// Sends an update to every gateway subscribed to its guild (best effort).
    async fn publish(&self, update: &PresenceUpdate) -> Result<(), BusError>;
    /// Updates of one guild, from now on (the caller's own included).
    async fn subscribe(&self, guild_id: &str) -> Result<BoxStream<Received>, BusError>;
}

/// A shared presence channel.
pub type SharedPresenceBus = Arc<dyn PresenceBus>;
