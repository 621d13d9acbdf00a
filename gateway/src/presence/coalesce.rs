//! Diffs waiting to go out, per guild (pure, no I/O). Changes are netted (a user who came and
//! went before the diff left is in neither list); a guild with at most `PRESENCE_MAX_LISTED`
//! users gets its diff at once, a larger one at most once per [`LARGE_GUILD_EVERY`], so a
//! storm of reconnects costs each member one diff per second, not one per reconnect.
//!
//! A connection that opens while its guild's diff is held has a snapshot that already holds
//! the held changes, and netting may hide from the held diff a change it needs (a user in its
//! snapshot who left again within the second). So it is not sent a snapshot then; the guild
//! stays due ([`Coalescer::hold_snapshot`]) and it gets its snapshot when the held diff goes
//! out, while the connections that were there before get the diff.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::protocol::identity::UserInfo;

use super::cluster::Changes;

/// The most often a large guild's members get a diff.
pub const LARGE_GUILD_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Waiting {
    joined: HashMap<String, UserInfo>,
    left: HashSet<String>,
    /// Connections opened while this diff waited: the guild is due even if it nets to nothing.
    snapshots: bool,
}

/// Pending diffs and when each guild last had one.
#[derive(Default)]
pub struct Coalescer {
    waiting: HashMap<Arc<str>, Waiting>,
    last_sent: HashMap<Arc<str>, Instant>,
}

impl Coalescer {
    /// Adds changes of the merged view of `guild`.
    pub fn record(&mut self, guild: &Arc<str>, changes: Changes) {
        if changes.is_empty() {
            return;
        }
        let waiting = self.waiting.entry(guild.clone()).or_default();
        for id in changes.left {
            if waiting.joined.remove(&id).is_none() {
                waiting.left.insert(id);
            }
        }
        for user in changes.joined {
            if !waiting.left.remove(&user.id) {
                waiting.joined.insert(user.id.clone(), user);
            }
        }
        if waiting.joined.is_empty() && waiting.left.is_empty() && !waiting.snapshots {
            self.waiting.remove(guild);
        }
    }

    /// A connection opens in `guild`: true when a diff is held there, so its snapshot must
    /// wait for the next [`Coalescer::take`] of the guild (which then happens even if the
    /// diff nets to nothing).
    pub fn hold_snapshot(&mut self, guild: &str) -> bool {
        match self.waiting.get_mut(guild) {
            Some(waiting) => {
                waiting.snapshots = true;
                true
            }
            None => false,
        }
    }

    /// The netted diff of `guild` if it may go out at `now` (`large`: above the listed
    /// maximum), as `(joined, left)`; both empty when only held snapshots were due.
    pub fn take(
        &mut self,
        guild: &str,
        large: bool,
        now: Instant,
    ) -> Option<(Vec<UserInfo>, Vec<String>)> {
        if !self.waiting.contains_key(guild) {
            return None;
        }
        if large
            && self
                .last_sent
                .get(guild)
                .is_some_and(|at| now < *at + LARGE_GUILD_EVERY)
        {
            return None;
        }
        let (guild, waiting) = self.waiting.remove_entry(guild)?;
        self.last_sent.insert(guild, now);
        let mut joined: Vec<UserInfo> = waiting.joined.into_values().collect();
        joined.sort_by(|a, b| a.id.cmp(&b.id));
        let mut left: Vec<String> = waiting.left.into_iter().collect();
        left.sort();
        Some((joined, left))
    }

    /// Guilds with a diff waiting.
    pub fn guilds(&self) -> Vec<Arc<str>> {
        self.waiting.keys().cloned().collect()
    }

    /// Forgets a guild (no local connection follows it any more).
    pub fn forget(&mut self, guild: &str) {
        self.waiting.remove(guild);
        self.last_sent.remove(guild);
    }

    /// Drops send times older than the coalescing window (keeps the map small).
    pub fn prune(&mut self, now: Instant) {
        self.last_sent.retain(|_, at| now < *at + LARGE_GUILD_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::protocol::identity::Role;

    fn changes(joined: &[&str], left: &[&str]) -> Changes {
        Changes {
            joined: joined
                .iter()
                .map(|u| UserInfo::new(*u, *u, Role::Member))
                .collect(),
            left: left.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn changes_are_netted_and_large_guilds_wait() {
        // (name, recorded, large, take at ms after a first take at 0, expected)
        type Expect = Option<(&'static [&'static str], &'static [&'static str])>;
        let cases: &[(&str, &[Changes], bool, u64, Expect)] = &[
            (
                "a small guild at once",
                &[changes(&["u1"], &[])],
                false,
                0,
                Some((&["u1"], &[])),
            ),
            (
                "came and went",
                &[changes(&["u1"], &[]), changes(&[], &["u1"])],
                false,
                0,
                None,
            ),
            (
                "went and came back",
                &[changes(&[], &["u1"]), changes(&["u1"], &[])],
                false,
                0,
                None,
            ),
            (
                "a large guild within the second",
                &[changes(&["u1"], &["u2"])],
                true,
                999,
                None,
            ),
            (
                "a large guild after the second",
                &[changes(&["u1"], &["u2"])],
                true,
                1000,
                Some((&["u1"], &["u2"])),
            ),
        ];
        let guild: Arc<str> = Arc::from("g1");
        for (name, recorded, large, at, expected) in cases {
            let start = Instant::now();
            let mut coalescer = Coalescer::default();
            coalescer.record(&guild, changes(&["u0"], &[]));
            assert!(
                coalescer.take(&guild, *large, start).is_some(),
                "{name}: the first goes out"
            );
            for c in recorded.iter() {
                coalescer.record(&guild, c.clone());
            }
            let got = coalescer.take(&guild, *large, start + Duration::from_millis(*at));
            let got = got.map(|(j, l)| (j.into_iter().map(|u| u.id).collect::<Vec<_>>(), l));
            let expected = expected.map(|(j, l)| {
                (
                    j.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    l.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, expected, "{name}");
        }
    }

    /// A connection opens in a large guild after `before` was recorded (the first diff went
    /// out at 0), then `after` is recorded, then the guild is taken at `at` ms.
    struct Held {
        name: &'static str,
        before: Vec<Changes>,
        after: Vec<Changes>,
        held: bool,
        at: u64,
        expected: Option<(Vec<&'static str>, Vec<&'static str>)>,
    }

    #[test]
    fn a_snapshot_held_with_a_diff_keeps_the_guild_due() {
        let cases = [
            Held {
                name: "nothing held",
                before: vec![],
                after: vec![],
                held: false,
                at: 1000,
                expected: None,
            },
            Held {
                name: "held within the second",
                before: vec![changes(&["u1"], &[])],
                after: vec![],
                held: true,
                at: 999,
                expected: None,
            },
            Held {
                name: "the held diff after the second",
                before: vec![changes(&["u1"], &[])],
                after: vec![],
                held: true,
                at: 1000,
                expected: Some((vec!["u1"], vec![])),
            },
            Held {
                name: "netted to nothing, still due for the snapshot",
                before: vec![changes(&["u1"], &[])],
                after: vec![changes(&[], &["u1"])],
                held: true,
                at: 1000,
                expected: Some((vec![], vec![])),
            },
            Held {
                name: "changes after the connection opened go in the same diff",
                before: vec![changes(&["u1"], &[])],
                after: vec![changes(&["u2"], &[])],
                held: true,
                at: 1000,
                expected: Some((vec!["u1", "u2"], vec![])),
            },
        ];
        let guild: Arc<str> = Arc::from("g1");
        for case in cases {
            let name = case.name;
            let start = Instant::now();
            let mut coalescer = Coalescer::default();
            coalescer.record(&guild, changes(&["u0"], &[]));
            assert!(coalescer.take(&guild, true, start).is_some(), "{name}");
            for c in case.before {
                coalescer.record(&guild, c);
            }
            assert_eq!(coalescer.hold_snapshot(&guild), case.held, "{name}: held");
            for c in case.after {
                coalescer.record(&guild, c);
            }
            let due = coalescer.guilds().contains(&guild);
            assert_eq!(due, case.held, "{name}: listed as due");
            let got = coalescer.take(&guild, true, start + Duration::from_millis(case.at));
            let got = got.map(|(j, l)| (j.into_iter().map(|u| u.id).collect::<Vec<_>>(), l));
            let expected = case.expected.map(|(j, l)| {
                (
                    j.into_iter().map(str::to_owned).collect::<Vec<_>>(),
                    l.into_iter().map(str::to_owned).collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, expected, "{name}");
        }
    }
}
