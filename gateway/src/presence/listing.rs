//! Which users a guild's members see listed (pure, no I/O). A guild of at most
//! `PRESENCE_MAX_LISTED` users lists everyone. A larger one lists a sample, the first
//! `max − 1` in listing order (name, then id), and each connection gets its own user beside
//! it: a snapshot lists at most `max` and always includes its viewer.
//!
//! Diffs are the changes of that sample (and the exact count), not of the whole guild, so a
//! diff holds at most `2 × max` users however many come and go: a storm of reconnects in a
//! guild of 10,000 costs each member at most one diff per second of at most that size, where
//! a diff of every change would list thousands.

use std::collections::HashSet;
use std::sync::Arc;

use chat_shared::protocol::identity::UserInfo;

/// How many users a guild of `count` online lists in its sample.
pub fn sample_size(count: usize, max: usize) -> usize {
    if count <= max {
        count
    } else {
        max.saturating_sub(1)
    }
}

/// The list a snapshot shows `viewer`: the sample, and the viewer after it if not in it.
pub fn with_viewer(
    mut sample: Vec<Arc<UserInfo>>,
    viewer: Option<&UserInfo>,
) -> Vec<Arc<UserInfo>> {
    if let Some(viewer) = viewer
        && !sample.iter().any(|u| u.id == viewer.id)
    {
        sample.push(Arc::new(viewer.clone()));
    }
    sample
}

/// A change of the sample: who entered it, who left it (ids), and the count now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleDiff {
    pub joined: Vec<UserInfo>,
    pub left: Vec<String>,
    pub count: usize,
}

impl SampleDiff {
    /// `left` as `viewer` must get it, when it differs: without the viewer's own id (a viewer
    /// with a connection open is online; they left the sample, not the guild).
    pub fn left_for(&self, viewer: &str) -> Option<Vec<String>> {
        self.left.iter().any(|id| id == viewer).then(|| {
            self.left
                .iter()
                .filter(|id| *id != viewer)
                .cloned()
                .collect()
        })
    }
}

/// What a guild's connections were last told: the sample's ids and the count.
#[derive(Debug, Default, Clone)]
pub struct Told {
    ids: HashSet<String>,
    count: usize,
}

impl Told {
    /// Told `sample` and `count` (a snapshot to every connection).
    pub fn of(sample: &[Arc<UserInfo>], count: usize) -> Self {
        Told {
            ids: sample.iter().map(|u| u.id.clone()).collect(),
            count,
        }
    }

    /// The diff from what was told to `sample` and `count`, which become what was told;
    /// `None` when neither changed.
    pub fn advance(&mut self, sample: &[Arc<UserInfo>], count: usize) -> Option<SampleDiff> {
        let now: HashSet<&str> = sample.iter().map(|u| u.id.as_str()).collect();
        let mut left: Vec<String> = self
            .ids
            .iter()
            .filter(|id| !now.contains(id.as_str()))
            .cloned()
            .collect();
        left.sort();
        let joined: Vec<UserInfo> = sample
            .iter()
            .filter(|u| !self.ids.contains(&u.id))
            .map(|u| UserInfo::clone(u))
            .collect();
        if joined.is_empty() && left.is_empty() && count == self.count {
            return None;
        }
        for id in &left {
            self.ids.remove(id);
        }
        self.ids.extend(joined.iter().map(|u| u.id.clone()));
        self.count = count;
        Some(SampleDiff {
            joined,
            left,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::protocol::identity::Role;

    fn users(ids: &[&str]) -> Vec<Arc<UserInfo>> {
        ids.iter()
            .map(|u| Arc::new(UserInfo::new(*u, *u, Role::Member)))
            .collect()
    }

    fn ids(users: &[Arc<UserInfo>]) -> Vec<&str> {
        users.iter().map(|u| u.id.as_str()).collect()
    }

    #[test]
    fn the_sample_is_everyone_up_to_max_then_leaves_room_for_the_viewer() {
        // (count, max, sample size)
        for (count, max, size) in [(0, 3, 0), (2, 3, 2), (3, 3, 3), (4, 3, 2), (500, 100, 99)] {
            assert_eq!(sample_size(count, max), size, "count {count}, max {max}");
        }
        assert_eq!(sample_size(2, 1), 0, "max 1 lists the viewer only");
    }

    #[test]
    fn a_viewer_is_listed_once() {
        let sample = users(&["a", "b"]);
        // (viewer, listed)
        let cases: &[(Option<&str>, &[&str])] = &[
            (None, &["a", "b"]),
            (Some("b"), &["a", "b"]),
            (Some("z"), &["a", "b", "z"]),
        ];
        for (viewer, listed) in cases {
            let viewer = viewer.map(|v| UserInfo::new(v, v, Role::Member));
            let got = with_viewer(sample.clone(), viewer.as_ref());
            assert_eq!(ids(&got), *listed, "viewer {viewer:?}");
        }
    }

    #[test]
    fn diffs_are_the_changes_of_the_sample_and_the_count() {
        // (name, told, count told, sample now, count now, expected joined, left; None: no diff)
        type Case = (
            &'static str,
            &'static [&'static str],
            usize,
            &'static [&'static str],
            usize,
            Option<(&'static [&'static str], &'static [&'static str])>,
        );
        let cases: &[Case] = &[
            ("nothing changed", &["a"], 1, &["a"], 1, None),
            ("one came", &["a"], 1, &["a", "b"], 2, Some((&["b"], &[]))),
            ("one went", &["a", "b"], 2, &["a"], 1, Some((&[], &["b"]))),
            (
                "the count moved outside the sample",
                &["a", "b"],
                500,
                &["a", "b"],
                501,
                Some((&[], &[])),
            ),
            (
                "a newcomer pushed the last one out",
                &["b", "c"],
                10,
                &["a", "b"],
                11,
                Some((&["a"], &["c"])),
            ),
            ("came and went between diffs", &["a"], 1, &["a"], 1, None),
        ];
        for (name, told, told_count, now, count, expected) in cases {
            let mut t = Told::of(&users(told), *told_count);
            let got = t.advance(&users(now), *count);
            let got = got.map(|d| {
                assert_eq!(d.count, *count, "{name}: count");
                (
                    d.joined.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
                    d.left,
                )
            });
            let expected = expected.map(|(j, l)| {
                (
                    j.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    l.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, expected, "{name}");
            assert_eq!(t.advance(&users(now), *count), None, "{name}: told now");
        }
    }

    #[test]
    fn a_viewer_never_reads_that_they_left() {
        let diff = SampleDiff {
            joined: vec![UserInfo::new("a", "a", Role::Member)],
            left: vec!["b".into(), "c".into()],
            count: 9,
        };
        assert_eq!(diff.left_for("b"), Some(vec!["c".to_string()]));
        assert_eq!(diff.left_for("a"), None, "not in left: the shared diff");
    }
}
