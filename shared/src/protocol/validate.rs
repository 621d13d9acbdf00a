//! Checks on what a client submits, shared by the gateway (early answer) and the router (the
//! authority): message ids, text, guild ids.

use crate::protocol::ErrorCode;

/// Longest client `messageId`.
pub const MAX_MESSAGE_ID_LEN: usize = 64;
/// Longest guild id accepted anywhere.
pub const MAX_GUILD_ID_LEN: usize = 64;
/// Suffix reserved for bot replies.
pub const BOT_REPLY_SUFFIX: &str = "-bot";

/// Whether `id` is a valid client messageId: 1–64 of `[A-Za-z0-9_-]`, not ending in `-bot`.
pub fn is_valid_client_message_id(id: &str) -> bool {
    is_token(id, MAX_MESSAGE_ID_LEN) && !id.ends_with(BOT_REPLY_SUFFIX)
}

/// Whether `id` is usable as a guild id: 1–64 of `[A-Za-z0-9_-]` (it becomes part of a subject
/// and a key, so nothing else is allowed).
pub fn is_valid_guild_id(id: &str) -> bool {
    is_token(id, MAX_GUILD_ID_LEN)
}

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The text of a send after trimming, or the error for it.
pub fn check_text(text: Option<&str>, max_chars: usize) -> Result<&str, ErrorCode> {
    let trimmed = text.map(str::trim).unwrap_or("");
    if trimmed.is_empty() {
        return Err(ErrorCode::EmptyMessage);
    }
    if trimmed.chars().count() > max_chars {
        return Err(ErrorCode::MessageTooLong);
    }
    Ok(trimmed)
}

/// Whether the text asks for the bot: `@slimy` or `@slimy.ai`, any case.
pub fn mentions_bot(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("@slimy").any(|(i, m)| {
        let rest = &lower[i + m.len()..];
        let rest = rest.strip_prefix(".ai").unwrap_or(rest);
        !rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        assert!(is_valid_client_message_id("abc_DEF-123"));
        assert!(!is_valid_client_message_id(""));
        assert!(!is_valid_client_message_id("has space"));
        assert!(!is_valid_client_message_id("x-bot"));
        assert!(!is_valid_client_message_id(&"a".repeat(65)));
        assert!(is_valid_client_message_id(&"a".repeat(64)));
    }

    #[test]
    fn text_rules() {
        assert_eq!(check_text(None, 5), Err(ErrorCode::EmptyMessage));
        assert_eq!(check_text(Some("   "), 5), Err(ErrorCode::EmptyMessage));
        assert_eq!(check_text(Some(" héllo "), 5), Ok("héllo"));
        assert_eq!(
            check_text(Some("toolong"), 5),
            Err(ErrorCode::MessageTooLong)
        );
    }

    #[test]
    fn bot_mentions() {
        assert!(mentions_bot("hey @slimy what's up"));
        assert!(mentions_bot("@SLIMY.AI help"));
        assert!(mentions_bot("ping @Slimy"));
        assert!(!mentions_bot("@slimyness"));
        assert!(!mentions_bot("slimy"));
    }
}
