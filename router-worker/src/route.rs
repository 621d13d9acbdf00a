//! Deciding sends: validation (every error code of the contract), the admin-only rule,
//! stamping (messageId, ts), the idempotent append (a guild's queued sends together),
//! delivery, and the bot trigger.

use std::sync::Arc;

use chat_shared::bus::{
    AppendOutcome, BotJob, Bus, BusError, INTERNAL_VERSION, LogEntry, SendAck, SendOutcome,
    SendRequest, UserEvent,
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

/// A send after its append: what is left to do before answering it.
#[derive(Debug)]
pub enum Decided {
    /// Stored now: deliver it (and queue the bot job), then ack it.
    Appended { entry: LogEntry, wants_bot: bool },
    /// Answered without a new entry (refused, or a duplicate).
    Answer(SendOutcome),
}

/// A send that passed validation, waiting for its append.
struct Accepted {
    /// Its place among the sends decided together.
    index: usize,
    wants_bot: bool,
    requested_id: Option<String>,
}

/// Validates sends of one guild, in their arrival order, and appends the valid ones together
/// (one group commit on the bus); one decision per send, in the same order.
pub async fn decide(
    bus: &dyn Bus,
    config: &RouterConfig,
    requests: Vec<SendRequest>,
) -> Vec<Decided> {
    let mut decided: Vec<Option<Decided>> = Vec::with_capacity(requests.len());
    let mut accepted = Vec::new();
    let mut messages = Vec::new();
    for (index, request) in requests.into_iter().enumerate() {
        match validate(config, &request) {
            Ok(message) => {
                let wants_bot = request.sender.role != Role::Bot
                    && (request.request_bot || mentions_bot(&message.text));
                accepted.push(Accepted {
                    index,
                    wants_bot,
                    requested_id: request.message_id,
                });
                messages.push(message);
                decided.push(None);
            }
            Err(code) => decided.push(Some(Decided::Answer(Err(code)))),
        }
    }
    if !messages.is_empty() {
        let span = tracing::info_span!("log.append", guild = %messages[0].guild_id,
            messages = messages.len());
        let outcomes = bus.append_batch(messages).instrument(span).await;
        for (send, outcome) in accepted.into_iter().zip(outcomes) {
            let index = send.index;
            decided[index] = Some(after_append(outcome, send));
        }
    }
    (decided.into_iter())
        .map(|d| d.unwrap_or(Decided::Answer(Err(ErrorCode::ServerError))))
        .collect()
}

fn after_append(outcome: Result<AppendOutcome, BusError>, send: Accepted) -> Decided {
    match outcome {
        Ok(AppendOutcome::Appended(entry)) => Decided::Appended {
            entry,
            wants_bot: send.wants_bot,
        },
        Ok(AppendOutcome::Duplicate { seq }) => Decided::Answer(Ok(SendAck {
            message_id: send.requested_id.unwrap_or_default(),
            seq,
        })),
        Ok(AppendOutcome::ForeignId) => Decided::Answer(Err(ErrorCode::DuplicateMessageId)),
        Err(error) => {
            tracing::warn!(%error, "append failed");
            Decided::Answer(Err(ErrorCode::ServerError))
        }
    }
}

/// Delivers the appended entries of sends decided together (in one bus message where the bus
/// can) and queues their bot jobs; the answer for each sender, in order. Called in the guild's
/// order, so deliveries leave in seq order.
pub async fn finish(bus: &dyn Bus, decided: Vec<Decided>) -> Vec<SendOutcome> {
    let entries: Vec<LogEntry> = (decided.iter())
        .filter_map(|d| match d {
            Decided::Appended { entry, .. } => Some(entry.clone()),
            Decided::Answer(_) => None,
        })
        .collect();
    if !entries.is_empty()
        && let Err(error) = bus.publish_batch(&entries).await
    {
        tracing::warn!(%error, seq = entries[0].seq,
            "publish failed; gateways fill it from the log");
    }
    let mut outcomes = Vec::with_capacity(decided.len());
    for d in decided {
        outcomes.push(match d {
            Decided::Answer(outcome) => outcome,
            Decided::Appended { entry, wants_bot } => {
                let ack = SendAck {
                    message_id: entry.message.message_id.clone(),
                    seq: entry.seq,
                };
                if wants_bot {
                    queue_bot_job(bus, entry.seq, entry.message).await;
                }
                Ok(ack)
            }
        });
    }
    outcomes
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
