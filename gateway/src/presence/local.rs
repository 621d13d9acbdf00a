//! This gateway's own users per guild, from its connections (pure, no I/O): several
//! connections of a user count once; when the last one closes the user lingers for
//! `PRESENCE_LINGER_MS` before counting as gone, so a page reload does not flap. Lingering
//! users are also kept in order of their end, so the tick looks at those that ended only, not
//! at every user (10k idle connections cost the tick nothing).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::protocol::identity::UserInfo;

struct LocalUser {
    /// Shared with the merged view (`cluster`).
    info: Arc<UserInfo>,
    connections: u32,
    /// Set while no connection is open: gone at this instant.
    gone_at: Option<Instant>,
}

/// Local users by guild.
pub struct LocalPresence {
    linger: Duration,
    guilds: HashMap<Arc<str>, HashMap<String, LocalUser>>,
    /// (end of the linger, guild, user id) of every linger begun; one whose user came back
    /// is skipped when its time comes.
    lingering: BTreeSet<(Instant, Arc<str>, String)>,
}

impl LocalPresence {
    pub fn new(linger: Duration) -> Self {
        LocalPresence {
            linger,
            guilds: HashMap::new(),
            lingering: BTreeSet::new(),
        }
    }

    /// A connection of `user` opened in `guild`; `true` when the user is newly online here.
    pub fn connect(&mut self, guild: &Arc<str>, user: &Arc<UserInfo>) -> bool {
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
    pub fn disconnect(
        &mut self,
        guild: &Arc<str>,
        user_id: &str,
        now: Instant,
        at_once: bool,
    ) -> bool {
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
        let gone_at = now + self.linger;
        user.gone_at = Some(gone_at);
        self.lingering
            .insert((gone_at, guild.clone(), user_id.to_owned()));
        false
    }

    /// Users whose linger ended by `now`, removed, as `(guild, user id)`.
    pub fn expire(&mut self, now: Instant) -> Vec<(Arc<str>, String)> {
        let mut gone = Vec::new();
        while let Some((at, guild, id)) = self.lingering.pop_first() {
            if at > now {
                self.lingering.insert((at, guild, id));
                break;
            }
            let Some(users) = self.guilds.get_mut(&guild) else {
                continue;
            };
            if users.get(&id).is_none_or(|u| u.gone_at != Some(at)) {
                continue;
            }
            users.remove(&id);
            if users.is_empty() {
                self.guilds.remove(&guild);
            }
            gone.push((guild, id));
        }
        gone
    }

    /// Everyone online here in `guild` (lingering users included).
    pub fn users(&self, guild: &str) -> Vec<Arc<UserInfo>> {
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
                "back and gone again: the later linger counts",
                &[
                    Connect("u1", true),
                    Disconnect("u1", 0, false, false),
                    Connect("u1", false),
                    Disconnect("u1", 1000, false, false),
                    Expire(3500, &[]),
                    Expire(4000, &["u1"]),
                    Expire(10_000, &[]),
                ],
            ),
            (
                "lingers end in order, each once",
                &[
                    Connect("u2", true),
                    Connect("u1", true),
                    Disconnect("u2", 500, false, false),
                    Disconnect("u1", 0, false, false),
                    Expire(3000, &["u1"]),
                    Expire(3500, &["u2"]),
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
                        assert_eq!(local.connect(&guild, &Arc::new(user(id))), *new, "{name}")
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
