//! Presence and typing (issue #13; DESIGN.md "Presence and typing"), a subsystem of its own.
//! The pure parts: [`local`] (this gateway's users, with the linger), [`cluster`] (the merged
//! view of every gateway, with the TTL), [`listing`] (the listed sample and its diffs),
//! [`coalesce`] (when a diff may go out) and
//! [`typing`] (the throttle). The I/O: [`service`] (the state behind one lock, fan-out to local
//! connections, heartbeats), [`rooms`] (the followed guilds' connections and snapshots),
//! [`feed`] (one bus subscription per followed guild) and [`outbox`] (frames encoded once per
//! encoding). `docs/architecture.md` "Presence" describes the costs.
//!
//! The connection core calls it from a few marked hooks: `PresenceService::join` / `leave`
//! when a connection opens, closes or its guilds change, and `PresenceService::typing` for a
//! client `typing` frame. With `PRESENCE_ENABLED=false` the same hooks go to [`off`]: typing
//! only, every snapshot `available:false`.

pub mod cluster;
pub mod coalesce;
pub mod config;
mod feed;
pub mod listing;
pub mod local;
mod metrics;
mod off;
mod outbox;
mod rooms;
pub mod service;
pub mod typing;

#[cfg(test)]
mod props;

pub use config::PresenceConfig;
pub use service::PresenceService;
