//! Every NATS name the bus uses: subjects, streams, the consumer and the key-value bucket.
//! `docs/architecture.md` describes them; change both together.

use super::partitions::partition_of;
use crate::protocol::validate::is_valid_guild_id;

/// Queue group of the routers on an ingress partition (normally one; two during a handover).
pub const ROUTERS_QUEUE_GROUP: &str = "routers";
/// In-memory bucket of router heartbeats and partition leases.
pub const ROUTERS_BUCKET: &str = "CHAT_ROUTERS";

/// The stream holding every guild log.
pub const LOG_STREAM: &str = "CHAT_LOG";
/// Subjects of [`LOG_STREAM`].
pub const LOG_ALL: &str = "chat.log.>";

/// Admin-only deliveries of every guild.
pub const ADMIN_ALL: &str = "chat.admin.*";

/// The work-queue stream of bot jobs.
pub const BOT_STREAM: &str = "BOT_JOBS";
/// The only subject of [`BOT_STREAM`].
pub const BOT_JOBS_SUBJECT: &str = "bot.jobs";
/// The durable pull consumer every bot worker shares.
pub const BOT_CONSUMER: &str = "bot-workers";

/// Key-value bucket of messageId claims.
pub const CLAIMS_BUCKET: &str = "CHAT_MSGIDS";

/// Every user event subject.
pub const USER_EVENTS_ALL: &str = "session.events.*";

/// Where a send for this guild goes: its partition's subject (an absent or invalid guild has
/// a partition too; the router answers it with the right error).
pub fn ingress_subject(guild_id: Option<&str>) -> String {
    partition_subject(partition_of(guild_id))
}

/// The ingress subject of a partition.
pub fn partition_subject(partition: u32) -> String {
    format!("chat.ingress.{partition}")
}

/// The log subject of a (valid) guild.
pub fn log_subject(guild_id: &str) -> String {
    format!("chat.log.{guild_id}")
}

/// The live delivery subject of a (valid) guild.
pub fn deliver_subject(guild_id: &str) -> String {
    format!("chat.deliver.{guild_id}")
}

/// The admin-only delivery subject of a (valid) guild.
pub fn admin_subject(guild_id: &str) -> String {
    format!("chat.admin.{guild_id}")
}

/// The event subject of a user. A user id that is not a plain token (it may hold `.`, `*`,
/// spaces…) is hex-encoded behind `x-`; subscribers read the real id from the payload.
pub fn user_event_subject(user_id: &str) -> String {
    if is_valid_guild_id(user_id) {
        format!("session.events.{user_id}")
    } else {
        let hex: String = user_id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("session.events.x-{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_goes_to_the_guilds_partition() {
        let p = partition_of(Some("g1"));
        assert_eq!(ingress_subject(Some("g1")), format!("chat.ingress.{p}"));
        assert_eq!(ingress_subject(None), ingress_subject(Some("a.b")));
        assert_eq!(ingress_subject(Some("")), ingress_subject(None));
    }

    #[test]
    fn user_subjects_are_single_tokens() {
        assert_eq!(user_event_subject("u1"), "session.events.u1");
        assert_eq!(user_event_subject("a.b"), "session.events.x-612e62");
    }
}
