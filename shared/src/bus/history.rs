//! History pages (`Bus::read_history`, `GET /api/guilds/{id}/messages`): the pure rule every bus
//! applies while walking a guild log newest first. At most [`MAX_SCANNED_PER_PAGE`] entries are
//! looked at per request, visible to the reader or not (issue #14 item 5: a member's page over
//! thousands of admin-only entries must not cost thousands of reads). A page that stops at the
//! cap says `more` and where to go on (`next_before`): the next request passes it as `before`
//! and scans the next stretch, so paging always makes progress, even through a stretch with
//! nothing visible (an empty page with `more`).

use super::{LogEntry, Visibility};

/// Entries a history request scans at most (visible or not), whatever its `limit`.
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

    /// Offers the next older entry; `has_older` says whether one exists below it (its `prev`
    /// is not 0). Returns whether the caller should fetch and offer the next one.
    pub fn offer(&mut self, entry: LogEntry, has_older: bool) -> Walk {
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

    /// Walks `log` (oldest first, `a` = admin-only, `p` = public) newest first like a bus.
    fn walk(
        log: &str,
        limit: usize,
        cap: usize,
        visibility: Visibility,
    ) -> (Vec<u64>, bool, Option<u64>, usize) {
        let mut builder = PageBuilder::with_cap(limit, visibility, cap);
        for (i, kind) in log
            .chars()
            .enumerate()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let seq = i as u64 + 1;
            if builder.offer(entry(seq, kind == 'a'), seq > 1) == Walk::Stop {
                break;
            }
        }
        let scanned = builder.scanned();
        let page = builder.finish();
        let seqs = page.entries.iter().map(|e| e.seq).collect();
        (seqs, page.more, page.next_before, scanned)
    }

    #[test]
    fn pages_stop_at_the_limit_or_the_cap() {
        use Visibility::{All, Public};
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
        for (i, (log, limit, cap, vis, seqs, more, next, scanned)) in table.into_iter().enumerate()
        {
            assert_eq!(
                walk(log, limit, cap, vis),
                (seqs.to_vec(), more, next, scanned),
                "row {i}: {log} limit {limit} cap {cap} {vis:?}"
            );
        }
    }
}
