//! This gateway's own users per guild, from its connections (pure, no I/O): several
//! connections of a user count once; when the last one closes the user lingers for
//! `PRESENCE_LINGER_MS` before counting as gone, so a page reload does not flap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::protocol::identity::UserInfo;

struct LocalUser {
    info: UserInfo,
    connections: u32,
    /// Set while no connection is open: gone at this instant.
    gone_at: Option<Instant>,
}

/// Local users by guild.
pub struct LocalPresence {
    linger: Duration,
    guilds: HashMap<Arc<str>, HashMap<String, LocalUser>>,
}

impl LocalPresence {
    pub fn new(linger: Duration) -> Self {
        LocalPresence {
            linger,
            guilds: HashMap::new(),
        }
    }

    /// A connection of `user` opened in `guild`; `true` when the user is newly online here.
    pub fn connect(&mut self, guild: &Arc<str>, user: &UserInfo) -> bool {
        let users = self.guilds.entry(guild.clone()).or_default();
        match users.get_mut(&user.id) {
            Some(known) => {
                known.connections += 1;
                known.gone_at = None;
                false
            }
            None => {
                users.insert(
                    user.id.clone(),
                    LocalUser {
                        info: user.clone(),
                        connections: 1,
                        gone_at: None,
                    },
                );
                true
            }
        }
    }

    /// A connection of `user_id` in `guild` closed. With `at_once` (membership removed) the
    /// user is gone now when it was the last one: returns `true` then.
    pub fn disconnect(&mut self, guild: &str, user_id: &str, now: Instant, at_once: bool) -> bool {
        let Some(users) = self.guilds.get_mut(guild) else {
            return false;
        };
        let Some(user) = users.get_mut(user_id) else {
            return false;
        };
        user.connections = user.connections.saturating_sub(1);
        if user.connections > 0 {
            return false;
        }
        if at_once {
            users.remove(user_id);
            if users.is_empty() {
                self.guilds.remove(guild);
            }
            return true;
        }
        user.gone_at = Some(now + self.linger);
        false
    }

    /// Users whose linger ended by `now`, removed, as `(guild, user id)`.
    pub fn expire(&mut self, now: Instant) -> Vec<(Arc<str>, String)> {
        let mut gone = Vec::new();
        self.guilds.retain(|guild, users| {
            users.retain(|id, user| {
                let over = user.gone_at.is_some_and(|at| at <= now);
                if over {
                    gone.push((guild.clone(), id.clone()));
                }
                !over
            });
            !users.is_empty()
        });
        gone
    }

    /// Everyone online here in `guild` (lingering users included).
    pub fn users(&self, guild: &str) -> Vec<UserInfo> {
        self.guilds
            .get(guild)
            .map(|users| users.values().map(|u| u.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Guilds with at least one local user.
    pub fn guilds(&self) -> impl Iterator<Item = &Arc<str>> {
        self.guilds.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::protocol::identity::Role;

    const LINGER: Duration = Duration::from_millis(3000);

    enum Step {
        Connect(&'static str, bool),
        Disconnect(&'static str, u64, bool, bool),
        Expire(u64, &'static [&'static str]),
    }

    fn user(id: &str) -> UserInfo {
        UserInfo::new(id, id, Role::Member)
    }

    #[test]
    fn connections_count_once_and_linger() {
        use Step::*;
        let cases: &[(&str, &[Step])] = &[
            (
                "two connections, one user",
                &[
                    Connect("u1", true),
                    Connect("u1", false),
                    Disconnect("u1", 0, false, false),
                    Expire(5000, &[]),
                ],
            ),
            (
                "gone after the linger, not before",
                &[
                    Connect("u1", true),
                    Disconnect("u1", 0, false, false),
                    Expire(2999, &[]),
                    Expire(3000, &["u1"]),
                ],
            ),
            (
                "a reload within the linger does not flap",
                &[
                    Connect("u1", true),
                    Disconnect("u1", 0, false, false),
                    Connect("u1", false),
                    Expire(10_000, &[]),
                ],
            ),
            (
                "membership removed: gone at once",
                &[Connect("u1", true), Disconnect("u1", 0, true, true)],
            ),
            (
                "an unknown user's disconnect is ignored",
                &[Disconnect("u9", 0, true, false), Expire(10_000, &[])],
            ),
        ];
        let guild: Arc<str> = Arc::from("g1");
        for (name, steps) in cases {
            let start = Instant::now();
            let mut local = LocalPresence::new(LINGER);
            for step in steps.iter() {
                match step {
                    Connect(id, new) => {
                        assert_eq!(local.connect(&guild, &user(id)), *new, "{name}")
                    }
                    Disconnect(id, at, at_once, gone) => assert_eq!(
                        local.disconnect(&guild, id, start + Duration::from_millis(*at), *at_once),
                        *gone,
                        "{name}"
                    ),
                    Expire(at, gone) => {
                        let got: Vec<String> = local
                            .expire(start + Duration::from_millis(*at))
                            .into_iter()
                            .map(|(_, id)| id)
                            .collect();
                        assert_eq!(got, *gone, "{name}");
                    }
                }
            }
        }
    }
}
