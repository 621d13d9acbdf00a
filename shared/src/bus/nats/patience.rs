//! How long a gateway waits for the answer to an ingress batch before asking again: an
//! estimate of the partition's answer time, as TCP estimates its retransmission timeout
//! (RFC 6298: the smoothed answer time plus four times its variation), never below
//! [`FLOOR`] nor above [`CEILING`]. Only answers to a batch's first request are timed (a
//! batch asked again cannot tell which request was answered).
//!
//! A fixed patience made overload worse: once routers answered slower than it, every batch
//! was asked again while its first request was still being served, so the routers did each
//! batch twice exactly when they had the least time for it (hot guild at 10,000 msg/s: 0
//! delivered). Now the patience follows the answers; a request lost on the way (a handover)
//! is still asked again about a second later while answers are quick.

use std::time::Duration;

/// The shortest patience: far above a router's answer time when it keeps up.
pub const FLOOR: Duration = Duration::from_secs(1);
/// The longest patience before a first retry.
pub const CEILING: Duration = Duration::from_secs(30);

/// The answer-time estimate of one ingress partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct Patience {
    /// Smoothed answer time and its mean deviation, once an answer was timed.
    smoothed: Option<(Duration, Duration)>,
}

impl Patience {
    /// Takes the time a batch's first request waited for its answer.
    pub fn observe(&mut self, answered_in: Duration) {
        self.smoothed = Some(match self.smoothed {
            None => (answered_in, answered_in / 2),
            Some((smoothed, deviation)) => {
                let error = smoothed.abs_diff(answered_in);
                (
                    (smoothed * 7 + answered_in) / 8,
                    (deviation * 3 + error) / 4,
                )
            }
        });
    }

    /// How long to wait for an answer before asking again.
    pub fn current(&self) -> Duration {
        let estimate = self
            .smoothed
            .map_or(FLOOR, |(smoothed, deviation)| smoothed + deviation * 4);
        estimate.clamp(FLOOR, CEILING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn patience_follows_the_answer_times_within_its_bounds() {
        let slow_then_quick: Vec<u64> = std::iter::once(2000).chain([3; 40]).collect();
        let cases: [(&str, Vec<u64>, Duration); 6] = [
            ("nothing timed yet", vec![], FLOOR),
            ("quick answers", vec![2, 3, 2, 4, 3], FLOOR),
            ("one slow answer", vec![400], ms(1200)),
            ("answers slowing down", vec![200, 400, 800, 1600], ms(2475)),
            ("far slower than the ceiling", vec![60_000], CEILING),
            ("quick again after slow", slow_then_quick, FLOOR),
        ];
        for (name, answers, expected) in cases {
            let mut patience = Patience::default();
            for answer in answers {
                patience.observe(ms(answer));
            }
            let got = patience.current();
            assert!(
                got.abs_diff(expected) <= ms(5),
                "{name}: {got:?}, expected {expected:?}"
            );
        }
    }
}
