//! When each guild's diff may go out (pure, no I/O). A change marks its guild due; a guild
//! with at most `PRESENCE_MAX_LISTED` users gets its diff at once, a larger one at most once
//! per [`LARGE_GUILD_EVERY`], so a storm of reconnects costs each member one diff per second,
//! not one per reconnect. What the diff says is the change of the listed sample since the last
//! one ([`Told`], see `listing`), so changes that came and went in between net out.
//!
//! A connection that opens while its guild's diff is held would get a snapshot that already
//! holds the held changes, and the diff computed against what the others were told may hide a
//! change it needs (a user in its snapshot who left again within the second). So it is not
//! sent a snapshot then ([`Coalescer::hold_snapshot`]); it gets its snapshot when the held
//! diff goes out, while the connections that were there before get the diff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::protocol::identity::UserInfo;

use super::cluster::Changes;
use super::listing::{SampleDiff, Told};

/// The most often a large guild's members get a diff.
pub const LARGE_GUILD_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Guild {
    /// Changes came since the last diff.
    due: bool,
    last_sent: Option<Instant>,
    told: Told,
}

/// Per followed guild: whether a diff is due, when the last went out, what it told.
#[derive(Default)]
pub struct Coalescer {
    guilds: HashMap<Arc<str>, Guild>,
}

impl Coalescer {
    /// Notes changes of the merged view of `guild`.
    pub fn record(&mut self, guild: &Arc<str>, changes: &Changes) {
        if !changes.is_empty() {
            self.guilds.entry(guild.clone()).or_default().due = true;
        }
    }

    /// A connection opens in `guild`: true when a diff is held there, so its snapshot must
    /// wait for the guild's next diff ([`Coalescer::take`]).
    pub fn hold_snapshot(&self, guild: &str) -> bool {
        self.guilds.get(guild).is_some_and(|g| g.due)
    }

    /// Whether `guild`'s diff may go out at `now` (`large`: above the listed maximum); if so
    /// it is no longer due, and [`Coalescer::advance`] makes it.
    pub fn take(&mut self, guild: &str, large: bool, now: Instant) -> bool {
        let Some(g) = self.guilds.get_mut(guild).filter(|g| g.due) else {
            return false;
        };
        if large && g.last_sent.is_some_and(|at| now < at + LARGE_GUILD_EVERY) {
            return false;
        }
        g.due = false;
        g.last_sent = Some(now);
        true
    }

    /// The diff from what `guild`'s connections were told to `sample` and `count`.
    pub fn advance(
        &mut self,
        guild: &Arc<str>,
        sample: &[Arc<UserInfo>],
        count: usize,
    ) -> Option<SampleDiff> {
        let g = self.guilds.entry(guild.clone()).or_default();
        g.told.advance(sample, count)
    }

    /// Every connection of `guild` was sent a snapshot of `sample` and `count`.
    pub fn told_all(&mut self, guild: &Arc<str>, sample: &[Arc<UserInfo>], count: usize) {
        let g = self.guilds.entry(guild.clone()).or_default();
        g.due = false;
        g.told = Told::of(sample, count);
    }

    /// Guilds with a diff due.
    pub fn guilds(&self) -> Vec<Arc<str>> {
        self.guilds
            .iter()
            .filter(|(_, g)| g.due)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Forgets a guild (no local connection follows it any more).
    pub fn forget(&mut self, guild: &str) {
        self.guilds.remove(guild);
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
    fn small_guilds_go_at_once_and_large_ones_once_a_second() {
        // (name, changes recorded after a first diff at 0, large, asked at ms, may go)
        let cases: &[(&str, &[Changes], bool, u64, bool)] = &[
            ("nothing came", &[], false, 0, false),
            (
                "a small guild at once",
                &[changes(&["u1"], &[])],
                false,
                0,
                true,
            ),
            (
                "came and went: still due, the sample says",
                &[changes(&["u1"], &[]), changes(&[], &["u1"])],
                false,
                0,
                true,
            ),
            (
                "a large guild within the second",
                &[changes(&["u1"], &["u2"])],
                true,
                999,
                false,
            ),
            (
                "a large guild after the second",
                &[changes(&["u1"], &["u2"])],
                true,
                1000,
                true,
            ),
        ];
        let guild: Arc<str> = Arc::from("g1");
        for (name, recorded, large, at, expected) in cases {
            let start = Instant::now();
            let mut coalescer = Coalescer::default();
            coalescer.record(&guild, &changes(&["u0"], &[]));
            assert!(
                coalescer.take(&guild, *large, start),
                "{name}: the first goes out"
            );
            for c in recorded.iter() {
                coalescer.record(&guild, c);
            }
            assert_eq!(
                coalescer.hold_snapshot(&guild),
                !recorded.is_empty(),
                "{name}: held"
            );
            assert_eq!(
                coalescer.guilds().contains(&guild),
                !recorded.is_empty(),
                "{name}: listed as due"
            );
            let got = coalescer.take(&guild, *large, start + Duration::from_millis(*at));
            assert_eq!(got, *expected, "{name}");
            assert!(
                !coalescer.take(&guild, false, start + Duration::from_millis(*at + 1000)) || !got,
                "{name}: taken once"
            );
        }
    }

    #[test]
    fn a_snapshot_to_everyone_is_what_was_told() {
        let guild: Arc<str> = Arc::from("g1");
        let mut coalescer = Coalescer::default();
        coalescer.record(&guild, &changes(&["u1"], &[]));
        let sample: Vec<Arc<UserInfo>> = changes(&["u1", "u2"], &[])
            .joined
            .into_iter()
            .map(Arc::new)
            .collect();
        coalescer.told_all(&guild, &sample, 2);
        assert!(!coalescer.hold_snapshot(&guild), "nothing due after it");
        assert_eq!(coalescer.advance(&guild, &sample, 2), None);
        let diff = coalescer.advance(&guild, &sample[..1], 1);
        assert_eq!(diff.map(|d| d.left), Some(vec!["u2".to_string()]));
    }
}
