//! The per-connection sequencer: pure logic, no I/O, no clock. It takes everything that may
//! end up on one connection — live entries from every feed (a guild's feed and the admin-only
//! feed), resume pages, gap-fill pages and membership changes — and says what to write, in
//! which order, and what to fetch:
//! - per guild, entries are written in `seq` order, each once, whichever feed (or page)
//!   carried it first;
//! - a guild being resumed writes its replay first; its live entries wait until the replay's
//!   last page, then follow in order;
//! - an entry whose `prev` is ahead of what was written shows a missed (or late) delivery:
//!   it waits and a [`Fetch`] of the hole is requested; a later live copy or the fill page,
//!   whichever comes first, closes it. [`Sequencer::resync`] asks for everything after the
//!   last written entry of every guild (after a bus reconnect, when nothing may ever arrive
//!   to show the hole).
//!
//! Visibility: a member guild shows every entry to an admin and the non-admin-only ones to
//! others; an admin also sees the admin-only entries of guilds they are not a member of. The
//! entries the connection may not see still move its position forward.
//!
//! A guild joined without a resume starts at its first live entry (nothing before the
//! connection's subscription is owed). The caller runs the effects and feeds the pages back.

use std::sync::Arc;

use chat_shared::bus::Visibility;

use cursor::{Cursor, Resume, drain, fetch_visibility, visible, widened, within};
use cursors::Cursors;

mod cursor;
mod cursors;
#[cfg(test)]
mod props;
mod ranges;
#[cfg(test)]
mod tests;

/// Live entries one connection may hold back at once (waiting for a replay or a gap fill);
/// beyond it the connection is too slow to keep up ([`Out::TooSlow`]).
pub const MAX_HELD: usize = 4096;

/// What the sequencer needs to know about an entry.
pub trait Sequenced {
    fn seq(&self) -> u64;
    /// The seq of the previous entry of the same guild, any visibility (0 for the first).
    fn prev(&self) -> u64;
    fn guild_id(&self) -> &str;
    fn admin_only(&self) -> bool;
}

/// A read of the log the caller should run and hand back to [`Sequencer::fill`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub guild: Arc<str>,
    /// Read entries with seq > `after` …
    pub after: u64,
    /// … and below this one (`None`: up to the end of the log).
    pub before: Option<u64>,
    pub visibility: Visibility,
}

/// What to do, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Out<T> {
    /// Write this entry's `message` frame.
    Write(T),
    /// Write the `resumed` frame of a finished resume.
    Resumed {
        guild: Arc<str>,
        replayed: u64,
        gap: bool,
    },
    /// Run this read and hand its page to [`Sequencer::fill`].
    Fetch(Fetch),
    /// Too much held back: close the connection with 4009.
    TooSlow,
}

/// One connection's ordering state.
#[derive(Debug)]
pub struct Sequencer<T> {
    admin: bool,
    cursors: Cursors<T>,
    held: usize,
}

impl<T: Sequenced> Sequencer<T> {
    /// A connection of an admin or not, member of `guilds`.
    pub fn new<'a>(admin: bool, guilds: impl IntoIterator<Item = &'a str>) -> Self {
        let cursors = guilds
            .into_iter()
            .map(|g| Cursor::new(Arc::from(g), true))
            .collect();
        let cursors = Cursors::new(cursors);
        Sequencer {
            admin,
            cursors,
            held: 0,
        }
    }

    /// Live entries held back now (for metrics and tests).
    pub fn held(&self) -> usize {
        self.held
    }

    /// The guild became one of the connection's.
    pub fn join(&mut self, guild: &str) {
        match self.cursors.get_mut(guild) {
            Some(cursor) => cursor.member = true,
            None => self.cursors.insert(Cursor::new(Arc::from(guild), true)),
        }
    }

    /// The guild is no longer one of the connection's: a non-admin forgets it (a replay in
    /// progress ends without its `resumed`); an admin keeps seeing its admin-only entries.
    pub fn leave(&mut self, guild: &str) {
        if self.admin {
            if let Some(cursor) = self.cursors.get_mut(guild) {
                cursor.member = false;
            }
        } else if let Some(cursor) = self.cursors.remove(guild) {
            self.held -= cursor.held.len();
        }
    }

    /// A live entry from any feed.
    pub fn live(&mut self, entry: T, out: &mut Vec<Out<T>>) {
        let admin = self.admin;
        if self.cursor(entry.guild_id()).is_none() {
            return;
        }
        let Some(cursor) = self.cursors.get_mut(entry.guild_id()) else {
            return;
        };
        if !cursor.member && !entry.admin_only() {
            return;
        }
        let seq = entry.seq();
        if cursor.has_written(seq) || cursor.held.contains_key(&seq) {
            return;
        }
        if cursor.resume.is_none() {
            let (lo, _) = *cursor.written.get_or_insert((entry.prev(), entry.prev()));
            if seq <= lo {
                return;
            }
        }
        cursor.held.insert(seq, entry);
        self.held += 1;
        if self.held > MAX_HELD {
            out.push(Out::TooSlow);
            return;
        }
        drain(cursor, &mut self.held, admin, out);
    }

    /// A resume of `guild` from `after` starts: its live entries wait for the replay.
    pub fn resume_begin(&mut self, guild: &str, after: u64) {
        if let Some(cursor) = self.cursor(guild) {
            cursor.resume = Some(Box::new(Resume {
                after,
                ..Resume::default()
            }));
        }
    }

    /// A page of a resume's replay (entries oldest first); `done` on the last one.
    pub fn resume_page(
        &mut self,
        guild: &str,
        entries: Vec<T>,
        gap: bool,
        done: bool,
        out: &mut Vec<Out<T>>,
    ) {
        let admin = self.admin;
        let Some(cursor) = self.cursors.get_mut(guild) else {
            return;
        };
        let Some(resume) = cursor.resume.as_mut() else {
            return;
        };
        for entry in entries {
            let seq = entry.seq();
            // Within the written range only what the live rules showed was written: an
            // admin's non-member guild showed only admin-only entries, and its replay shows
            // them all (what an earlier replay wrote is in `replayed`).
            let shown = within(cursor.written, seq) && visible(admin, cursor.member, &entry);
            let written = shown || cursor.replayed.as_ref().is_some_and(|r| r.contains(seq));
            if seq <= resume.after || seq <= resume.last || written {
                continue;
            }
            if cursor.held.remove(&seq).is_some() {
                self.held -= 1;
            }
            resume.replayed += 1;
            resume.last = seq;
            out.push(Out::Write(entry));
        }
        resume.gap |= gap;
        if !done {
            return;
        }
        let Some(resume) = cursor.resume.take() else {
            return;
        };
        let top = resume.last.max(resume.after);
        cursor.written = Some(widened(cursor.written, resume.after, top));
        if !cursor.member {
            cursor
                .replayed
                .get_or_insert_with(Box::default)
                .add(resume.after, top);
        }
        let guild = cursor.guild.clone();
        out.push(Out::Resumed {
            guild,
            replayed: resume.replayed,
            gap: resume.gap,
        });
        drain(cursor, &mut self.held, admin, out);
    }

    /// The page read for a [`Fetch`] (entries oldest first, as the log returned them for
    /// `after` and the fetch's visibility; `more` when the read was cut at its limit).
    pub fn fill(&mut self, fetch: &Fetch, entries: Vec<T>, more: bool, out: &mut Vec<Out<T>>) {
        let admin = self.admin;
        let Some(cursor) = self.cursors.get_mut(&fetch.guild) else {
            return;
        };
        cursor.fetching = false;
        if cursor.resume.is_some() {
            // The replay covers it; the hole, if any remains, is asked for again after it.
            return;
        }
        let Some((lo, mut hi)) = cursor.written else {
            return;
        };
        let before = fetch.before.unwrap_or(u64::MAX);
        let last_read = entries.last().map(Sequenced::seq);
        for entry in entries.into_iter().filter(|e| e.seq() < before) {
            let seq = entry.seq();
            if seq <= hi {
                continue;
            }
            hi = seq;
            if cursor.held.remove(&seq).is_some() {
                self.held -= 1;
            }
            if visible(admin, cursor.member, &entry) {
                out.push(Out::Write(entry));
            }
        }
        let reached = match (more, last_read, fetch.before) {
            (true, Some(last), _) => last.min(before - 1),
            (_, _, Some(before)) => before - 1,
            (_, _, None) => hi,
        };
        let hi = hi.max(reached);
        cursor.written = Some((lo, hi));
        drain(cursor, &mut self.held, admin, out);
        if more && !cursor.fetching && hi < before - 1 {
            // Cut at its limit with nothing held to show the rest: read on.
            cursor.fetching = true;
            out.push(Out::Fetch(Fetch {
                after: hi,
                ..fetch.clone()
            }));
        }
    }

    /// A fetch failed: what it waited for is written as if the hole were empty (the client
    /// can still resume), so held entries do not wait forever.
    pub fn fill_failed(&mut self, fetch: &Fetch, out: &mut Vec<Out<T>>) {
        self.fill(fetch, Vec::new(), false, out);
    }

    /// Asks for everything after the last written entry of every guild not already being
    /// fetched or resumed: after a bus reconnect, entries published meanwhile may be lost
    /// and nothing else would show it.
    pub fn resync(&mut self, out: &mut Vec<Out<T>>) {
        let admin = self.admin;
        for cursor in self.cursors.values_mut() {
            if cursor.fetching || cursor.resume.is_some() {
                continue;
            }
            let Some((_, hi)) = cursor.written else {
                continue;
            };
            cursor.fetching = true;
            out.push(Out::Fetch(Fetch {
                guild: cursor.guild.clone(),
                after: hi,
                before: None,
                visibility: fetch_visibility(admin, cursor.member),
            }));
        }
    }

    /// The cursor of `guild`, created for an admin's non-member guild on first use.
    fn cursor(&mut self, guild: &str) -> Option<&mut Cursor<T>> {
        if !self.cursors.contains_key(guild) {
            if !self.admin {
                return None;
            }
            self.cursors.insert(Cursor::new(Arc::from(guild), false));
        }
        self.cursors.get_mut(guild)
    }
}
