//! The cluster's view of a guild's presence (pure, no I/O): the union of every gateway's
//! aggregate ("source"). A remote source lives while its heartbeats arrive and expires
//! `PRESENCE_TTL_MS` after the last one, so a killed gateway's users go; a gap in a source's
//! `seq` asks for its full list again. Every change is O(log n) per user (an ordered index by
//! name keeps the listed sample cheap); nothing is rebuilt.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::bus::presence::PresenceBody;
use chat_shared::protocol::identity::UserInfo;

/// Users that came and went in the merged view.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub joined: Vec<UserInfo>,
    pub left: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty()
    }
}

/// What applying an update led to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub changes: Changes,
    /// The source's state is uncertain: ask it for its full list.
    pub resync: bool,
}

struct Source {
    /// Ids of the source's users (keys shared with `GuildView::online`).
    users: HashSet<Arc<str>>,
    seq: u64,
    /// `None` for this gateway's own source.
    expires: Option<Instant>,
}

struct Online {
    info: Arc<UserInfo>,
    /// Sources that have the user.
    sources: u32,
}

/// An online user in listing order: by name, then id.
struct Listed(Arc<UserInfo>);

impl Listed {
    fn key(&self) -> (&str, &str) {
        (&self.0.name, &self.0.id)
    }
}

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Listed {}

impl PartialOrd for Listed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Listed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// One guild's view. A user is held once (`Arc`), whatever the number of sources and indexes
/// that name them: presence costs about a user record per member, not one per index.
#[derive(Default)]
struct GuildView {
    sources: HashMap<Arc<str>, Source>,
    online: HashMap<Arc<str>, Online>,
    /// `online` in listing order.
    order: BTreeSet<Listed>,
    /// Counts the changes of `online` (what a cached snapshot was made from).
    version: u64,
}

impl GuildView {
    fn add(&mut self, source: &Arc<str>, user: Arc<UserInfo>, changes: &mut Changes) {
        let Some(src) = self.sources.get_mut(source) else {
            return;
        };
        let id = match self.online.get_key_value(user.id.as_str()) {
            Some((id, _)) => id.clone(),
            None => Arc::from(user.id.as_str()),
        };
        if !src.users.insert(id.clone()) {
            return;
        }
        let entry = self.online.entry(id).or_insert_with(|| Online {
            info: user,
            sources: 0,
        });
        entry.sources += 1;
        if entry.sources == 1 {
            self.order.insert(Listed(entry.info.clone()));
            self.version += 1;
            changes.joined.push(UserInfo::clone(&entry.info));
        }
    }

    fn remove(&mut self, source: &Arc<str>, user_id: &str, changes: &mut Changes) {
        let Some(src) = self.sources.get_mut(source) else {
            return;
        };
        if !src.users.remove(user_id) {
            return;
        }
        self.drop_one(user_id, changes);
    }

    fn drop_one(&mut self, user_id: &str, changes: &mut Changes) {
        if let Some(entry) = self.online.get_mut(user_id) {
            entry.sources = entry.sources.saturating_sub(1);
            if entry.sources == 0 {
                if let Some(gone) = self.online.remove(user_id) {
                    self.order.remove(&Listed(gone.info));
                }
                self.version += 1;
                changes.left.push(user_id.to_owned());
            }
        }
    }

    fn remove_source(&mut self, source: &str, changes: &mut Changes) {
        if let Some(src) = self.sources.remove(source) {
            for id in &src.users {
                self.drop_one(id, changes);
            }
        }
    }

    /// Replaces a source's whole list (creating the source); of a user listed twice the first
    /// counts.
    fn replace(
        &mut self,
        source: &Arc<str>,
        seq: u64,
        users: Vec<Arc<UserInfo>>,
        expires: Option<Instant>,
    ) -> Changes {
        let mut changes = Changes::default();
        let src = self
            .sources
            .entry(source.clone())
            .or_insert_with(|| Source {
                users: HashSet::new(),
                seq,
                expires,
            });
        src.seq = seq;
        src.expires = expires;
        let fresh: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let stale: Vec<Arc<str>> = src
            .users
            .iter()
            .filter(|id| !fresh.contains(&***id))
            .cloned()
            .collect();
        for id in stale {
            self.remove(source, &id, &mut changes);
        }
        for user in users {
            self.add(source, user, &mut changes);
        }
        changes
    }
}

/// The merged presence of the guilds this gateway follows.
pub struct ClusterView {
    ttl: Duration,
    guilds: HashMap<Arc<str>, GuildView>,
}

impl ClusterView {
    pub fn new(ttl: Duration) -> Self {
        ClusterView {
            ttl,
            guilds: HashMap::new(),
        }
    }

    /// Starts following a guild with this gateway's own users in it.
    pub fn follow(
        &mut self,
        guild: &Arc<str>,
        own: &Arc<str>,
        users: Vec<Arc<UserInfo>>,
    ) -> Changes {
        let view = self.guilds.entry(guild.clone()).or_default();
        view.replace(own, 0, users, None)
    }

    /// Stops following a guild.
    pub fn unfollow(&mut self, guild: &str) {
        self.guilds.remove(guild);
    }

    pub fn follows(&self, guild: &str) -> bool {
        self.guilds.contains_key(guild)
    }

    /// This gateway's own user came or went (the own source never expires).
    pub fn local(
        &mut self,
        guild: &str,
        own: &Arc<str>,
        joined: Option<Arc<UserInfo>>,
        left: Option<&str>,
    ) -> Changes {
        let mut changes = Changes::default();
        let Some(view) = self.guilds.get_mut(guild) else {
            return changes;
        };
        if let Some(user) = joined {
            view.add(own, user, &mut changes);
        }
        if let Some(id) = left {
            view.remove(own, id, &mut changes);
        }
        changes
    }

    /// Applies a remote gateway's update (not `Request` or `Typing`, which carry no state).
    pub fn apply(
        &mut self,
        guild: &str,
        source: &Arc<str>,
        body: &PresenceBody,
        now: Instant,
    ) -> Applied {
        let expires = Some(now + self.ttl);
        let Some(view) = self.guilds.get_mut(guild) else {
            return Applied::default();
        };
        let mut applied = Applied::default();
        match body {
            PresenceBody::Full { seq, users } => {
                let users = users.iter().cloned().map(Arc::new).collect();
                applied.changes = view.replace(source, *seq, users, expires);
            }
            PresenceBody::Delta { seq, joined, left } => {
                let src = view.sources.entry(source.clone()).or_insert_with(|| {
                    applied.resync = true;
                    Source {
                        users: HashSet::new(),
                        seq: 0,
                        expires,
                    }
                });
                applied.resync |= *seq != src.seq + 1;
                src.seq = *seq;
                src.expires = expires;
                for id in left {
                    view.remove(source, id, &mut applied.changes);
                }
                for user in joined {
                    view.add(source, Arc::new(user.clone()), &mut applied.changes);
                }
            }
            PresenceBody::Heartbeat { seq } => match view.sources.get_mut(source) {
                Some(src) => {
                    src.expires = expires;
                    applied.resync = *seq != src.seq;
                }
                None => applied.resync = true,
            },
            PresenceBody::Gone => view.remove_source(source, &mut applied.changes),
            PresenceBody::Request { .. } | PresenceBody::Typing { .. } => {}
        }
        applied
    }

    /// Drops remote sources whose heartbeats stopped; the changes per guild.
    pub fn expire(&mut self, now: Instant) -> Vec<(Arc<str>, Changes)> {
        let mut out = Vec::new();
        for (guild, view) in &mut self.guilds {
            let dead: Vec<Arc<str>> = view
                .sources
                .iter()
                .filter(|(_, s)| s.expires.is_some_and(|at| at <= now))
                .map(|(id, _)| id.clone())
                .collect();
            let mut changes = Changes::default();
            for source in dead {
                view.remove_source(&source, &mut changes);
            }
            if !changes.is_empty() {
                out.push((guild.clone(), changes));
            }
        }
        out
    }

    /// Users online in a guild.
    pub fn count(&self, guild: &str) -> usize {
        self.guilds.get(guild).map_or(0, |v| v.online.len())
    }

    /// Changes so far of the guild's online users: equal versions, equal lists.
    pub fn version(&self, guild: &str) -> u64 {
        self.guilds.get(guild).map_or(0, |v| v.version)
    }

    /// Whether `user_id` is online in `guild`.
    pub fn is_online(&self, guild: &str, user_id: &str) -> bool {
        self.guilds
            .get(guild)
            .is_some_and(|v| v.online.contains_key(user_id))
    }

    /// The first `max` online users in listing order (name, then id) and the exact count.
    /// Costs O(max) whatever the guild's size.
    pub fn listed(&self, guild: &str, max: usize) -> (Vec<Arc<UserInfo>>, usize) {
        let Some(view) = self.guilds.get(guild) else {
            return (Vec::new(), 0);
        };
        let listed = view
            .order
            .iter()
            .take(max)
            .map(|listed| listed.0.clone())
            .collect();
        (listed, view.online.len())
    }

    /// The user `user_id` as the view has them, if online.
    pub fn user(&self, guild: &str, user_id: &str) -> Option<&UserInfo> {
        self.guilds
            .get(guild)?
            .online
            .get(user_id)
            .map(|o| &*o.info)
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
