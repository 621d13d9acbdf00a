//! Every NATS name the bus uses: subjects, streams, the consumer and the key-value bucket.
//! `docs/architecture.md` describes them; change both together.

use crate::protocol::validate::is_valid_guild_id;

/// Queue group shared by every router on the ingress subjects.
pub const ROUTERS_QUEUE_GROUP: &str = "routers";
/// Every ingress subject (what routers subscribe to).
pub const INGRESS_ALL: &str = "chat.ingress.>";

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

/// The subject token standing for a guild id that cannot be one (absent or invalid).
const NO_GUILD_TOKEN: &str = "_";

/// Where a send for this guild goes; an absent or invalid guild goes to `chat.ingress._`
/// (the router answers it with the right error).
pub fn ingress_subject(guild_id: Option<&str>) -> String {
    let token = guild_id
        .filter(|g| is_valid_guild_id(g))
        .unwrap_or(NO_GUILD_TOKEN);
    format!("chat.ingress.{token}")
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
    fn ingress_falls_back_for_missing_or_invalid_guilds() {
        assert_eq!(ingress_subject(Some("g1")), "chat.ingress.g1");
        assert_eq!(ingress_subject(None), "chat.ingress._");
        assert_eq!(ingress_subject(Some("")), "chat.ingress._");
        assert_eq!(ingress_subject(Some("a.b")), "chat.ingress._");
    }

    #[test]
    fn user_subjects_are_single_tokens() {
        assert_eq!(user_event_subject("u1"), "session.events.u1");
        assert_eq!(user_event_subject("a.b"), "session.events.x-612e62");
    }
}
