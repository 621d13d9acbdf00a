//! Deciding one send: validation (every error code of the contract), the admin-only rule,
//! stamping (messageId, ts), the idempotent append, delivery, and the bot trigger.

use std::sync::Arc;

use chat_shared::bus::{
    AppendOutcome, BotJob, Bus, INTERNAL_VERSION, LogEntry, SendAck, SendOutcome, SendRequest,
    UserEvent,
};
use chat_shared::clock::iso_now;
use chat_shared::protocol::identity::Role;
use chat_shared::protocol::validate::{
    BOT_REPLY_SUFFIX, check_text, is_valid_client_message_id, is_valid_guild_id, mentions_bot,
};
use chat_shared::protocol::{ChatMessage, ErrorCode, ErrorFrame};
use tracing::Instrument;

/// What the router needs to know.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    pub max_text_chars: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_text_chars: 2000,
        }
    }
}

/// Decides one send and, when accepted, stores and publishes it.
pub async fn route(bus: &dyn Bus, config: &RouterConfig, request: SendRequest) -> SendOutcome {
    let decided = decide(bus, config, request).await;
    finish(bus, decided).await
}

/// A send after its append: what is left to do before answering it.
#[derive(Debug)]
pub enum Decided {
    /// Stored now: deliver it (and queue the bot job), then ack it.
    Appended { entry: LogEntry, wants_bot: bool },
    /// Answered without a new entry (refused, or a duplicate).
    Answer(SendOutcome),
}

/// Validates and appends a send. The append takes its place in the guild's order before its
/// first await, so a caller that starts the sends of a guild in arrival order (and polls each
/// once as it starts it) keeps that order while several are in flight.
pub async fn decide(bus: &dyn Bus, config: &RouterConfig, request: SendRequest) -> Decided {
    let message = match validate(config, &request) {
        Ok(message) => message,
        Err(code) => return Decided::Answer(Err(code)),
    };
    let wants_bot =
        request.sender.role != Role::Bot && (request.request_bot || mentions_bot(&message.text));
    let span = tracing::info_span!("log.append", guild = %message.guild_id);
    let outcome = match bus.append(message).instrument(span).await {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::warn!(%error, "append failed");
            return Decided::Answer(Err(ErrorCode::ServerError));
        }
    };
    match outcome {
        AppendOutcome::Appended(entry) => Decided::Appended { entry, wants_bot },
        AppendOutcome::Duplicate { seq } => Decided::Answer(Ok(SendAck {
            message_id: request.message_id.unwrap_or_default(),
            seq,
        })),
        AppendOutcome::ForeignId => Decided::Answer(Err(ErrorCode::DuplicateMessageId)),
    }
}

/// Delivers an appended entry and queues its bot job; the answer for the sender. Called in
/// the guild's order, so deliveries leave in seq order.
pub async fn finish(bus: &dyn Bus, decided: Decided) -> SendOutcome {
    let (entry, wants_bot) = match decided {
        Decided::Appended { entry, wants_bot } => (entry, wants_bot),
        Decided::Answer(outcome) => return outcome,
    };
    if let Err(error) = bus.publish(&entry).await {
        tracing::warn!(%error, seq = entry.seq, "publish failed; gateways fill it from the log");
    }
    let ack = SendAck {
        message_id: entry.message.message_id.clone(),
        seq: entry.seq,
    };
    if wants_bot {
        queue_bot_job(bus, entry.seq, entry.message).await;
    }
    Ok(ack)
}

/// Checks a send in the contract's order and builds the message to store.
fn validate(config: &RouterConfig, request: &SendRequest) -> Result<ChatMessage, ErrorCode> {
    if request.v != INTERNAL_VERSION {
        return Err(ErrorCode::ServerError);
    }
    let role = request.sender.role;
    let text = check_text(request.text.as_deref(), config.max_text_chars)?;
    let guild_id = request
        .guild_id
        .as_deref()
        .filter(|g| !g.is_empty())
        .ok_or(ErrorCode::MissingGuild)?;
    let message_id = match request.message_id.as_deref() {
        Some(id) if role == Role::Bot => bot_reply_id(id)?,
        Some(id) if is_valid_client_message_id(id) => id.to_owned(),
        Some(_) => return Err(ErrorCode::BadFrame),
        None => ulid::Ulid::new().to_string(),
    };
    let privileged = matches!(role, Role::Admin | Role::Bot);
    if !is_valid_guild_id(guild_id) || !(privileged || request.member_verified) {
        return Err(ErrorCode::ForbiddenGuild);
    }
    if request.admin_only && !privileged {
        return Err(ErrorCode::AdminOnlyForbidden);
    }
    Ok(ChatMessage {
        guild_id: guild_id.to_owned(),
        message_id,
        admin_only: request.admin_only,
        from: request.sender.clone(),
        text: text.to_owned(),
        ts: iso_now(),
    })
}

/// A bot reply id: a valid client id followed by `-bot`.
fn bot_reply_id(id: &str) -> Result<String, ErrorCode> {
    id.strip_suffix(BOT_REPLY_SUFFIX)
        .filter(|base| is_valid_client_message_id(base))
        .map(|_| id.to_owned())
        .ok_or(ErrorCode::BadFrame)
}

async fn queue_bot_job(bus: &dyn Bus, seq: u64, request: Arc<ChatMessage>) {
    let job = BotJob {
        v: INTERNAL_VERSION,
        seq,
        request: request.clone(),
    };
    if let Err(error) = bus.enqueue_bot_job(job).await {
        tracing::warn!(%error, "bot job could not be queued; telling the requester");
        tell_bot_unavailable(bus, &request).await;
    }
}

/// The requester's sockets get `bot_unavailable` for its message (as the bot worker sends
/// when it gives up): a request that never reached the queue is never answered otherwise.
async fn tell_bot_unavailable(bus: &dyn Bus, request: &ChatMessage) {
    let frame = ErrorFrame {
        message_id: Some(request.message_id.clone()),
        guild_id: Some(request.guild_id.clone()),
        ..ErrorFrame::new(ErrorCode::BotUnavailable, None)
    };
    if let Err(error) = bus
        .publish_user_event(&request.from.id, UserEvent::Notice { frame })
        .await
    {
        tracing::warn!(%error, "could not tell the requester the bot is unavailable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::protocol::identity::UserInfo;

    fn request(role: Role) -> SendRequest {
        SendRequest {
            v: INTERNAL_VERSION,
            sender: UserInfo::new("u1", "Ann", role),
            guild_id: Some("g1".into()),
            text: Some(" hi ".into()),
            admin_only: false,
            request_bot: false,
            message_id: None,
            member_verified: true,
        }
    }

    fn check(r: SendRequest) -> Result<ChatMessage, ErrorCode> {
        validate(&RouterConfig { max_text_chars: 5 }, &r)
    }

    #[test]
    fn each_refusal() {
        let mut r = request(Role::Member);
        r.text = Some("  ".into());
        assert_eq!(check(r).err(), Some(ErrorCode::EmptyMessage));
        let mut r = request(Role::Member);
        r.guild_id = Some(String::new());
        assert_eq!(check(r).err(), Some(ErrorCode::MissingGuild));
        let mut r = request(Role::Member);
        r.member_verified = false;
        assert_eq!(check(r).err(), Some(ErrorCode::ForbiddenGuild));
        let mut r = request(Role::Club);
        r.admin_only = true;
        assert_eq!(check(r).err(), Some(ErrorCode::AdminOnlyForbidden));
        let mut r = request(Role::Member);
        r.text = Some("toolong".into());
        assert_eq!(check(r).err(), Some(ErrorCode::MessageTooLong));
        let mut r = request(Role::Member);
        r.message_id = Some("x-bot".into());
        assert_eq!(check(r).err(), Some(ErrorCode::BadFrame));
    }

    #[test]
    fn admins_post_anywhere_and_text_is_trimmed() {
        let mut r = request(Role::Admin);
        r.member_verified = false;
        r.admin_only = true;
        let m = check(r).expect("admin may post");
        assert_eq!(m.text, "hi");
        assert!(m.admin_only);
        assert_eq!(m.message_id.len(), 26);
    }

    #[test]
    fn bot_replies_must_carry_the_suffix() {
        let mut r = request(Role::Bot);
        r.message_id = Some("abc-bot".into());
        assert_eq!(check(r).map(|m| m.message_id), Ok("abc-bot".into()));
        let mut r = request(Role::Bot);
        r.message_id = Some("abc".into());
        assert_eq!(check(r).err(), Some(ErrorCode::BadFrame));
    }
}
