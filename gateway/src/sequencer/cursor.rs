//! One guild as one connection has it: what was written (a seq range), the live entries held
//! back (for a replay or for the hole before them), the resume in progress, and the pure rules
//! that move it forward ([`drain`]) and say what the viewer may see ([`visible`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chat_shared::bus::Visibility;

use super::ranges::Ranges;
use super::{Fetch, Out, Sequenced};

/// A resume being written.
#[derive(Debug, Default)]
pub(super) struct Resume {
    pub(super) after: u64,
    pub(super) replayed: u64,
    pub(super) last: u64,
    pub(super) gap: bool,
}

/// What the connection has of one guild.
#[derive(Debug)]
pub(super) struct Cursor<T> {
    pub(super) guild: Arc<str>,
    pub(super) member: bool,
    /// Every visible entry with `lo < seq <= hi` has been written (`None`: nothing yet).
    pub(super) written: Option<(u64, u64)>,
    /// Live entries waiting (for the replay, or for the hole before them), by seq.
    pub(super) held: BTreeMap<u64, T>,
    pub(super) fetching: bool,
    pub(super) resume: Option<Box<Resume>>,
    /// Every entry, of any visibility, in these ranges was written by a replay: kept for an
    /// admin's non-member guild, where `written` counts only the admin-only entries it was
    /// shown live (`None` until such a replay; boxed, as few cursors need it).
    pub(super) replayed: Option<Box<Ranges>>,
}

impl<T> Cursor<T> {
    pub(super) fn new(guild: Arc<str>, member: bool) -> Self {
        Cursor {
            guild,
            member,
            written: None,
            held: BTreeMap::new(),
            fetching: false,
            resume: None,
            replayed: None,
        }
    }

    pub(super) fn has_written(&self, seq: u64) -> bool {
        within(self.written, seq)
    }
}

/// Whether `seq` is in the range `lo < seq <= hi` (none: no range yet).
pub(super) fn within(range: Option<(u64, u64)>, seq: u64) -> bool {
    range.is_some_and(|(lo, hi)| lo < seq && seq <= hi)
}

/// `range` widened to cover `lo < seq <= hi` too.
pub(super) fn widened(range: Option<(u64, u64)>, lo: u64, hi: u64) -> (u64, u64) {
    range.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi)))
}

/// Writes the held entries that follow what was written without a hole; asks for the hole
/// before the first one that does not. `held` is the connection's count of held entries.
pub(super) fn drain<T: Sequenced>(
    cursor: &mut Cursor<T>,
    held: &mut usize,
    admin: bool,
    out: &mut Vec<Out<T>>,
) {
    if cursor.resume.is_some() {
        return;
    }
    let Some((lo, mut hi)) = cursor.written else {
        return;
    };
    while let Some(first) = cursor.held.first_entry() {
        let entry = first.get();
        if entry.seq() > hi && entry.prev() > hi {
            break;
        }
        let entry = first.remove();
        *held -= 1;
        if entry.seq() > hi {
            hi = entry.seq();
            if visible(admin, cursor.member, &entry) {
                out.push(Out::Write(entry));
            }
        }
    }
    cursor.written = Some((lo, hi));
    if let Some(&next) = cursor.held.keys().next()
        && !cursor.fetching
    {
        cursor.fetching = true;
        out.push(Out::Fetch(Fetch {
            guild: cursor.guild.clone(),
            after: hi,
            before: Some(next),
            visibility: fetch_visibility(admin, cursor.member),
        }));
    }
}

/// Whether a connection sees an entry of a guild it is (or is not) a member of.
pub(super) fn visible(admin: bool, member: bool, entry: &impl Sequenced) -> bool {
    if member {
        admin || !entry.admin_only()
    } else {
        admin && entry.admin_only()
    }
}

/// What a gap read of a guild returns: an admin's non-member guild reads everything (the
/// sequencer keeps the admin-only entries).
pub(super) fn fetch_visibility(admin: bool, member: bool) -> Visibility {
    if member {
        Visibility::for_admin(admin)
    } else {
        Visibility::All
    }
}
