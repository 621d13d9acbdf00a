//! The presence and typing frames of `/ws` (DESIGN.md "Presence and typing"): the `presence`
//! snapshot of a guild, `presence_diff`, the server's `typing` notice and the client's `typing`
//! frame. The variants that carry them are in [`crate::protocol`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::identity::UserInfo;

/// `{"type":"presence","guildId","count","truncated","available","online":[user…]}`: who is
/// online in a guild, at most `PRESENCE_MAX_LISTED` of them, with the exact count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceSnapshot {
    pub guild_id: String,
    pub count: u64,
    pub truncated: bool,
    pub available: bool,
    /// Shared with the gateway's view of the guild (each user is held once).
    pub online: Vec<Arc<UserInfo>>,
}

/// `{"type":"presence_diff","guildId","count","joined":[user…],"left":[id…]}`. Applying a diff
/// is idempotent: a user already known as online may be listed as joined again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceDiff {
    pub guild_id: String,
    pub count: u64,
    pub joined: Vec<UserInfo>,
    pub left: Vec<String>,
}

/// Server → client `{"type":"typing","guildId","user":{…}}`: a member is writing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingNotice {
    pub guild_id: String,
    pub user: UserInfo,
}

/// Client → server `{"type":"typing","guildId":"g1"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
}

/// The body of `GET /api/guilds/{guildId}/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceBody {
    pub count: u64,
    pub online: Vec<Arc<UserInfo>>,
    pub truncated: bool,
    pub available: bool,
}

impl From<PresenceSnapshot> for PresenceBody {
    fn from(s: PresenceSnapshot) -> Self {
        PresenceBody {
            count: s.count,
            online: s.online,
            truncated: s.truncated,
            available: s.available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientFrame, ServerFrame};

    #[test]
    fn frames_have_the_contract_names() {
        let ann = UserInfo::new("u1", "Ann", crate::protocol::identity::Role::Member);
        let cases = [
            (
                ServerFrame::Presence(PresenceSnapshot {
                    guild_id: "g1".into(),
                    count: 1,
                    truncated: false,
                    available: true,
                    online: vec![Arc::new(ann.clone())],
                }),
                r##"{"type":"presence","guildId":"g1","count":1,"truncated":false,"available":true,"online":[{"id":"u1","name":"Ann","role":"member","color":"#3b82f6"}]}"##,
            ),
            (
                ServerFrame::PresenceDiff(PresenceDiff {
                    guild_id: "g1".into(),
                    count: 0,
                    joined: vec![],
                    left: vec!["u1".into()],
                }),
                r#"{"type":"presence_diff","guildId":"g1","count":0,"joined":[],"left":["u1"]}"#,
            ),
            (
                ServerFrame::Typing(TypingNotice {
                    guild_id: "g1".into(),
                    user: ann,
                }),
                r##"{"type":"typing","guildId":"g1","user":{"id":"u1","name":"Ann","role":"member","color":"#3b82f6"}}"##,
            ),
        ];
        for (frame, json) in cases {
            assert_eq!(serde_json::to_string(&frame).expect("encodes"), json);
            let back: ServerFrame = serde_json::from_str(json).expect("decodes");
            assert_eq!(back, frame);
        }
    }

    #[test]
    fn the_client_typing_frame_decodes() {
        let cases = [
            (r#"{"type":"typing","guildId":"g1"}"#, Some("g1")),
            (r#"{"type":"typing"}"#, None),
        ];
        for (json, guild) in cases {
            let frame: ClientFrame = serde_json::from_str(json).expect("decodes");
            assert_eq!(
                frame,
                ClientFrame::Typing(TypingFrame {
                    guild_id: guild.map(str::to_owned)
                })
            );
        }
    }
}
