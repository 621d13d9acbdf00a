//! The built-in command bot: answers `/help` and a few useful commands without any external
//! service; anything else gets a fixed text.

use chat_shared::bus::BotJob;
use chat_shared::protocol::ChatMessage;
use rand::Rng;

use crate::{Backend, BackendError};

/// The reply to a request that is not a command.
pub const FALLBACK_TEXT: &str =
    "OpenAI integration is not configured yet, but your message was received. Try /help.";

const HELP_TEXT: &str = "I'm slimy.ai. Commands: /help — this list; /ping — am I alive; \
/time — the server time (UTC); /roll [NdM] — roll dice, e.g. /roll 2d6; /flip — heads or tails; \
/echo <text> — repeat your text; /whoami — who you are here.";

/// The command bot.
#[derive(Debug, Default, Clone, Copy)]
pub struct CommandBot;

impl CommandBot {
    /// The answer to the first `/command` in the text, or `None` when there is none.
    pub fn command_reply(request: &ChatMessage) -> Option<String> {
        let text = strip_mentions(&request.text);
        let mut words = text.split_whitespace().skip_while(|w| !w.starts_with('/'));
        let command = words.next()?.strip_prefix('/')?.to_ascii_lowercase();
        let rest: Vec<&str> = words.collect();
        Some(match command.as_str() {
            "help" => HELP_TEXT.to_owned(),
            "ping" => "pong".to_owned(),
            "time" => format!("It is {} (UTC).", request.ts),
            "roll" => roll(rest.first().copied().unwrap_or("1d6")),
            "flip" => if rand::rng().random_bool(0.5) {
                "Heads."
            } else {
                "Tails."
            }
            .to_owned(),
            "echo" if !rest.is_empty() => rest.join(" "),
            "echo" => "Nothing to echo.".to_owned(),
            "whoami" => format!(
                "You are {} ({}) in guild {}.",
                request.from.name,
                request.from.role.as_str(),
                request.guild_id
            ),
            other => format!("Unknown command /{other}. Try /help."),
        })
    }
}

#[async_trait::async_trait]
impl Backend for CommandBot {
    async fn answer(&self, job: &BotJob) -> Result<String, BackendError> {
        Ok(Self::command_reply(&job.request).unwrap_or_else(|| FALLBACK_TEXT.to_owned()))
    }
}

/// The text without `@slimy` / `@slimy.ai` mentions.
pub(crate) fn strip_mentions(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| {
            let w = w.to_ascii_lowercase();
            let w = w.trim_end_matches([',', ':', '!', '?', '.']);
            w != "@slimy" && w != "@slimy.ai"
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `NdM` dice, bounded to 1–20 dice of 2–1000 sides.
fn roll(spec: &str) -> String {
    let parsed = spec
        .to_ascii_lowercase()
        .split_once('d')
        .and_then(|(n, m)| {
            let n = if n.is_empty() {
                Ok(1)
            } else {
                n.parse::<u32>()
            };
            Some((n.ok()?, m.parse::<u32>().ok()?))
        })
        .filter(|(n, m)| (1..=20).contains(n) && (2..=1000).contains(m));
    let Some((count, sides)) = parsed else {
        return "Usage: /roll NdM, e.g. /roll 2d6 (1–20 dice, 2–1000 sides).".to_owned();
    };
    let mut rng = rand::rng();
    let rolls: Vec<u32> = (0..count).map(|_| rng.random_range(1..=sides)).collect();
    let total: u32 = rolls.iter().sum();
    let shown: Vec<String> = rolls.iter().map(u32::to_string).collect();
    format!("🎲 {spec}: {} = {total}", shown.join(" + "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::protocol::identity::{Role, UserInfo};

    fn msg(text: &str) -> ChatMessage {
        ChatMessage {
            guild_id: "g1".into(),
            message_id: "m1".into(),
            admin_only: false,
            from: UserInfo::new("u1", "Ann", Role::Member),
            text: text.into(),
            ts: "2026-11-26T23:00:00.000Z".into(),
        }
    }

    #[test]
    fn commands_after_a_mention() {
        let help = CommandBot::command_reply(&msg("@slimy /help")).expect("command");
        assert!(help.contains("/roll"));
        assert_eq!(
            CommandBot::command_reply(&msg("@Slimy.ai, /ping")).as_deref(),
            Some("pong")
        );
        assert_eq!(
            CommandBot::command_reply(&msg("/echo a  b")).as_deref(),
            Some("a b")
        );
        assert_eq!(
            CommandBot::command_reply(&msg("hey @slimy /ping")).as_deref(),
            Some("pong")
        );
        assert!(CommandBot::command_reply(&msg("@slimy hello")).is_none());
    }

    #[test]
    fn dice_are_bounded() {
        assert!(roll("2d6").starts_with("🎲 2d6: "));
        assert!(roll("999d6").starts_with("Usage"));
        assert!(roll("banana").starts_with("Usage"));
    }
}
