//! The seqs an admin's replays of a guild it is not a member of have written: a few disjoint
//! ranges `lo < seq <= hi`, kept apart. One range widened to cover two replays that do not
//! touch would also cover the seqs between them, which neither wrote, and a later replay
//! would skip those entries. At most [`MAX_RANGES`] are kept: past that the lowest (the oldest
//! seqs) is forgotten, so a replay of that old span may write its entries again (never skip
//! one).

/// Ranges kept per cursor (resumes are rate limited, but a connection lives long).
const MAX_RANGES: usize = 64;

/// Disjoint, sorted ranges `lo < seq <= hi`; none empty; at most [`MAX_RANGES`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    pub(super) fn contains(&self, seq: u64) -> bool {
        self.0.iter().any(|&(lo, hi)| lo < seq && seq <= hi)
    }

    /// Adds `lo < seq <= hi` (nothing when empty), joined with the ranges it overlaps or
    /// touches.
    pub(super) fn add(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        let (mut lo, mut hi) = (lo, hi);
        self.0.retain(|&(l, h)| {
            let apart = h < lo || hi < l;
            if !apart {
                lo = lo.min(l);
                hi = hi.max(h);
            }
            apart
        });
        let at = self.0.partition_point(|&(l, _)| l < lo);
        self.0.insert(at, (lo, hi));
        if self.0.len() > MAX_RANGES {
            self.0.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lo < seq <= hi` pairs.
    type Pairs = &'static [(u64, u64)];

    #[test]
    fn ranges_join_only_what_overlaps_or_touches() {
        // (ranges added in order, the ranges kept)
        let cases: [(Pairs, Pairs); 6] = [
            (&[(0, 0), (2, 2)], &[]),
            (&[(0, 3), (5, 9)], &[(0, 3), (5, 9)]),
            (&[(5, 9), (0, 3)], &[(0, 3), (5, 9)]),
            (&[(0, 3), (3, 6)], &[(0, 6)]),
            (&[(0, 3), (5, 9), (2, 6)], &[(0, 9)]),
            (&[(4, 6), (0, 10)], &[(0, 10)]),
        ];
        for (added, kept) in cases {
            let mut ranges = Ranges::default();
            for &(lo, hi) in added {
                ranges.add(lo, hi);
            }
            assert_eq!(ranges.0, kept, "{added:?}");
        }
    }

    #[test]
    fn past_the_limit_the_lowest_range_is_forgotten() {
        let mut ranges = Ranges::default();
        for n in 0..=MAX_RANGES as u64 {
            ranges.add(10 * n, 10 * n + 5);
        }
        assert_eq!(ranges.0.len(), MAX_RANGES);
        assert!(!ranges.contains(3), "the lowest is gone");
        assert!(ranges.contains(13) && ranges.contains(10 * MAX_RANGES as u64 + 5));
    }

    #[test]
    fn a_seq_is_in_a_range_above_its_low_end() {
        let mut ranges = Ranges::default();
        ranges.add(0, 3);
        ranges.add(5, 9);
        let inside: Vec<u64> = (0..11).filter(|&s| ranges.contains(s)).collect();
        assert_eq!(inside, [1, 2, 3, 6, 7, 8, 9]);
    }
}
