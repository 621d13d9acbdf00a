//! History pages (`Bus::read_history`, `GET /api/guilds/{id}/messages`): the pure rule every bus
//! applies while walking a guild log newest first. A bus offers each entry with what it knows
//! lies [`Below`] it; for a member (who sees no admin-only entry) it may know where the previous
//! visible entry is (a link in the NATS log, an index in the memory bus) and then offers only
//! visible entries: the page costs what it returns, and has more exactly when a visible older
//! entry exists (issue #14 item 5). Where the bus does not know (NATS records written before the
//! link existed) it offers every entry, and at most [`MAX_SCANNED_PER_PAGE`] are looked at per
//! request, visible to the reader or not: a page that stops at the cap says `more` and where to
//! go on (`next_before`), so paging makes progress even through a stretch with nothing visible
//! (an empty page with `more`).

use super::{LogEntry, Visibility};

/// Entries a history request scans at most (visible or not), whatever its `limit`; only entries
/// a bus could not skip count (it offers them).
pub const MAX_SCANNED_PER_PAGE: usize = 500;

/// One history page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// Visible entries, newest first.
    pub entries: Vec<LogEntry>,
    /// Older entries may exist (the page is full, or the scan stopped at the cap).
    pub more: bool,
    /// With `more`: the `before` of the next page (every entry at or above it was scanned).
    pub next_before: Option<u64>,
}

/// What lies below an offered entry (older than it), as far as the bus knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Below {
    /// Some older entry exists.
    pub any: bool,
    /// Whether an older entry that is not admin-only exists, when the bus knows; `None` when it
    /// does not (then a member's walk goes on while [`Self::any`], scanning).
    pub visible: Option<bool>,
}

impl Below {
    /// Older entries exist or not; which of them are visible is unknown.
    pub fn any(any: bool) -> Self {
        Below { any, visible: None }
    }

    /// Whether a reader with `visibility` may find an older entry: an admin sees them all, a
    /// member only the visible ones (when the bus knows where they are).
    pub fn has_older(self, visibility: Visibility) -> bool {
        match (visibility, self.visible) {
            (Visibility::Public, Some(visible)) => visible,
            _ => self.any,
        }
    }
}

/// Whether to keep walking after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    Continue,
    Stop,
}

/// Builds a page from entries offered newest first.
#[derive(Debug)]
pub struct PageBuilder {
    limit: usize,
    cap: usize,
    visibility: Visibility,
    scanned: usize,
    page: HistoryPage,
}

impl PageBuilder {
    pub fn new(limit: usize, visibility: Visibility) -> Self {
        Self::with_cap(limit, visibility, MAX_SCANNED_PER_PAGE)
    }

    /// With another scan cap (tests; at least 1).
    pub fn with_cap(limit: usize, visibility: Visibility, cap: usize) -> Self {
        PageBuilder {
            limit,
            cap: cap.max(1),
            visibility,
            scanned: 0,
            page: HistoryPage::default(),
        }
    }

    /// Entries looked at so far.
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// Offers the next older entry, with what lies below it. Returns whether the caller should
    /// fetch and offer the next one.
    pub fn offer(&mut self, entry: LogEntry, below: Below) -> Walk {
        let has_older = below.has_older(self.visibility);
        let visible = self.visibility.admits(&entry.message);
        if visible && self.page.entries.len() == self.limit {
            return self.stop_more(self.page.entries.last().map_or(entry.seq + 1, |e| e.seq));
        }
        self.scanned += 1;
        let seq = entry.seq;
        if visible {
            self.page.entries.push(entry);
        }
        if !has_older {
            return Walk::Stop;
        }
        if self.scanned >= self.cap {
            return self.stop_more(seq);
        }
        Walk::Continue
    }

    fn stop_more(&mut self, next_before: u64) -> Walk {
        self.page.more = true;
        self.page.next_before = Some(next_before);
        Walk::Stop
    }

    /// The page; call it when [`Self::offer`] said stop or the log ran out.
    pub fn finish(self) -> HistoryPage {
        self.page
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::ChatMessage;
    use crate::protocol::identity::{Role, UserInfo};

    fn entry(seq: u64, admin_only: bool) -> LogEntry {
        let message = ChatMessage {
            guild_id: "g1".to_owned(),
            message_id: format!("m{seq}"),
            admin_only,
            from: UserInfo::new("u1", "Ann", Role::Admin),
            text: format!("m{seq}"),
            ts: "2026-12-01T00:00:00.000Z".to_owned(),
        };
        LogEntry {
            seq,
            prev: seq.saturating_sub(1),
            message: Arc::new(message),
            trace: Default::default(),
        }
    }

    /// How the walking bus knows what lies below an entry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Knows {
        /// Only whether older entries exist: it offers every entry (NATS records without links).
        Older,
        /// Also where the previous visible entry is: it offers a member only visible entries.
        Visible,
    }

    /// Walks `log` (oldest first, `a` = admin-only, `p` = public) newest first like a bus.
    fn walk(
        log: &str,
        limit: usize,
        cap: usize,
        visibility: Visibility,
        knows: Knows,
    ) -> (Vec<u64>, bool, Option<u64>, usize) {
        let kinds: Vec<bool> = log.chars().map(|kind| kind == 'a').collect();
        let mut builder = PageBuilder::with_cap(limit, visibility, cap);
        for (i, &admin_only) in kinds.iter().enumerate().rev() {
            let seq = i as u64 + 1;
            let below = match knows {
                Knows::Older => Below::any(seq > 1),
                Knows::Visible => Below {
                    any: seq > 1,
                    visible: Some(kinds[..i].contains(&false)),
                },
            };
            let skipped = knows == Knows::Visible && visibility == Visibility::Public;
            if skipped && admin_only {
                continue;
            }
            if builder.offer(entry(seq, admin_only), below) == Walk::Stop {
                break;
            }
        }
        let scanned = builder.scanned();
        let page = builder.finish();
        let seqs = page.entries.iter().map(|e| e.seq).collect();
        (seqs, page.more, page.next_before, scanned)
    }

    type Row = (
        &'static str,
        usize,
        usize,
        Visibility,
        &'static [u64],
        bool,
        Option<u64>,
        usize,
    );

    fn check(table: &[Row], knows: Knows) {
        for (i, &(log, limit, cap, vis, seqs, more, next, scanned)) in table.iter().enumerate() {
            assert_eq!(
                walk(log, limit, cap, vis, knows),
                (seqs.to_vec(), more, next, scanned),
                "row {i}: {log} limit {limit} cap {cap} {vis:?} {knows:?}"
            );
        }
    }

    #[test]
    fn pages_stop_at_the_limit_or_the_cap() {
        use Visibility::{All, Public};
        let table: [Row; 9] = [
            // log, limit, cap, visibility -> seqs, more, next_before, scanned
            ("ppp", 10, 100, Public, &[3, 2, 1], false, None, 3),
            ("ppp", 2, 100, Public, &[3, 2], true, Some(2), 2),
            ("ppp", 3, 100, Public, &[3, 2, 1], false, None, 3),
            ("pap", 10, 100, Public, &[3, 1], false, None, 3),
            ("pap", 10, 100, All, &[3, 2, 1], false, None, 3),
            // the cap: 4 admin-only entries below 2 visible ones, cap 3
            ("aaaapp", 10, 3, Public, &[6, 5], true, Some(4), 3),
            // the next page from there: nothing visible within the cap, still progress
            ("aaaa", 10, 3, Public, &[], true, Some(2), 3),
            // the cap reached on the oldest entry: nothing older, so no more
            ("app", 10, 3, Public, &[3, 2], false, None, 3),
            // a full page found before the cap
            ("aappp", 2, 3, Public, &[5, 4], true, Some(4), 2),
        ];
        check(&table, Knows::Older);
    }

    #[test]
    fn a_member_walk_by_visible_links_scans_only_what_it_returns() {
        use Visibility::{All, Public};
        let table: [Row; 8] = [
            // log, limit, cap, visibility -> seqs, more, next_before, scanned
            // the cap rows above: nothing older is visible, so the page ends
            ("aaaapp", 10, 3, Public, &[6, 5], false, None, 2),
            ("aaaa", 10, 3, Public, &[], false, None, 0),
            ("app", 10, 3, Public, &[3, 2], false, None, 2),
            // visible entries on both sides of a run longer than the cap
            ("paaaaap", 10, 3, Public, &[7, 1], false, None, 2),
            // more, exactly when a visible older entry exists
            ("ppaaap", 2, 3, Public, &[6, 2], true, Some(2), 2),
            ("paaapp", 2, 3, Public, &[6, 5], true, Some(5), 2),
            ("aaaapp", 2, 3, Public, &[6, 5], false, None, 2),
            // an admin's walk does not use the links: it sees everything, scanning it
            ("paap", 10, 100, All, &[4, 3, 2, 1], false, None, 4),
        ];
        check(&table, Knows::Visible);
    }

    #[test]
    fn only_a_member_follows_what_is_known_of_visible_entries() {
        use Visibility::{All, Public};
        // any, visible -> an admin has older, a member has older
        let table: [(bool, Option<bool>, bool, bool); 5] = [
            (false, None, false, false),
            (true, None, true, true),
            (true, Some(false), true, false),
            (true, Some(true), true, true),
            (false, Some(false), false, false),
        ];
        for (any, visible, admin, member) in table {
            let below = Below { any, visible };
            assert_eq!(below.has_older(All), admin, "{below:?} admin");
            assert_eq!(below.has_older(Public), member, "{below:?} member");
        }
    }
}
