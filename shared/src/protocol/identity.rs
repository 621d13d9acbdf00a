//! Who a user is: the role from the token, the colour that role shows in, and the `from`
//! object carried on every message.

use serde::{Deserialize, Serialize};

/// A user's role. The role comes from the verified token, never from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Club,
    Admin,
    Bot,
}

impl Role {
    /// The display colour of the role.
    pub fn color(self) -> &'static str {
        match self {
            Role::Member => "#3b82f6",
            Role::Club => "#f59e0b",
            Role::Admin => "#ef4444",
            Role::Bot => "#22c55e",
        }
    }

    /// Parses a role name from a token or a dev-login body. Unknown names get the least
    /// privilege (`member`), as the original system did.
    pub fn parse_lenient(name: Option<&str>) -> Role {
        match name.map(|n| n.trim().to_ascii_lowercase()).as_deref() {
            Some("admin") => Role::Admin,
            Some("club") => Role::Club,
            Some("bot") => Role::Bot,
            _ => Role::Member,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Club => "club",
            Role::Admin => "admin",
            Role::Bot => "bot",
        }
    }
}

/// The `from` / `user` object of the contract: `{id, name, role, color}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub color: String,
}

impl UserInfo {
    pub fn new(id: impl Into<String>, name: impl Into<String>, role: Role) -> Self {
        UserInfo {
            id: id.into(),
            name: name.into(),
            role,
            color: role.color().to_owned(),
        }
    }

    /// The bot's own identity: `{id:"bot", name:"slimy.ai", role:"bot"}`.
    pub fn bot() -> Self {
        UserInfo::new(BOT_USER_ID, "slimy.ai", Role::Bot)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// User id of the bot identity.
pub const BOT_USER_ID: &str = "bot";
