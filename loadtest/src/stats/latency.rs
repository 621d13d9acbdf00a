//! Latency recording: HdrHistograms in microseconds, sharded by client so thousands of client
//! tasks rarely contend, with one coarse histogram per second for the over-time plot.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

const SHARDS: usize = 16;
/// Largest recordable latency: one hour, in µs.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency distribution summary, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// Latency percentiles of the deliveries received during one second of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    pub second: u64,
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// One point of the latency CDF.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CdfPoint {
    pub quantile: f64,
    pub ms: f64,
}

struct Shard {
    overall: Histogram<u64>,
    per_second: Vec<Histogram<u64>>,
}

/// Latencies of a run.
pub struct LatencyBook {
    origin_ns: u64,
    shards: Vec<Mutex<Shard>>,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).expect("constant bounds are valid")
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl LatencyBook {
    /// A book whose timeline counts seconds from `origin_ns` (see [`crate::clock`]).
    pub fn new(origin_ns: u64) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    overall: histogram(3),
                    per_second: Vec::new(),
                })
            })
            .collect();
        LatencyBook { origin_ns, shards }
    }

    /// Records a latency observed at `at_ns` by client `client`.
    pub fn record(&self, client: usize, at_ns: u64, latency_ns: u64) {
        let micros = (latency_ns / 1000).clamp(1, MAX_MICROS);
        let second = usize::try_from(at_ns.saturating_sub(self.origin_ns) / 1_000_000_000)
            .unwrap_or(usize::MAX)
            .min(24 * 3600);
        let mut shard = self.shards[client % SHARDS].lock();
        shard.overall.saturating_record(micros);
        if second >= shard.per_second.len() {
            shard.per_second.resize_with(second + 1, || histogram(2));
        }
        shard.per_second[second].saturating_record(micros);
    }

    fn merged_overall(&self) -> Histogram<u64> {
        let mut all = histogram(3);
        for shard in &self.shards {
            let _ = all.add(&shard.lock().overall);
        }
        all
    }

    /// Percentiles over everything recorded.
    pub fn percentiles(&self) -> Percentiles {
        summarize(&self.merged_overall())
    }

    /// Per-second percentiles.
    pub fn timeline(&self) -> Vec<TimelinePoint> {
        let mut seconds: Vec<Histogram<u64>> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            if seconds.len() < shard.per_second.len() {
                seconds.resize_with(shard.per_second.len(), || histogram(2));
            }
            for (merged, own) in seconds.iter_mut().zip(&shard.per_second) {
                let _ = merged.add(own);
            }
        }
        seconds
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(second, h)| TimelinePoint {
                second: second as u64,
                count: h.len(),
                p50_ms: ms(h.value_at_quantile(0.5)),
                p90_ms: ms(h.value_at_quantile(0.9)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                p999_ms: ms(h.value_at_quantile(0.999)),
            })
            .collect()
    }

    /// The CDF at quantiles spaced evenly in "nines" (0, 0.9, 0.99, …), as far as the sample
    /// count resolves them, ending with the maximum at quantile `1 - 1/count`.
    pub fn cdf(&self) -> Vec<CdfPoint> {
        let all = self.merged_overall();
        if all.is_empty() {
            return Vec::new();
        }
        let resolvable_nines = (all.len() as f64).log10();
        let mut points: Vec<CdfPoint> = (0..=60)
            .map(|step| f64::from(step) / 10.0)
            .take_while(|nines| *nines < resolvable_nines)
            .map(|nines| {
                let quantile = 1.0 - 10f64.powf(-nines);
                CdfPoint {
                    quantile,
                    ms: ms(all.value_at_quantile(quantile)),
                }
            })
            .collect();
        points.push(CdfPoint {
            quantile: 1.0 - 1.0 / all.len() as f64,
            ms: ms(all.max()),
        });
        points
    }
}

/// Percentiles of one histogram of microseconds.
pub fn summarize(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_timeline() {
        let book = LatencyBook::new(0);
        for i in 1..=1000u64 {
            book.record(i as usize, i * 1_000_000, i * 1_000_000);
        }
        let p = book.percentiles();
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max_ms - 1000.0).abs() < 1.0, "{p:?}");
        let timeline = book.timeline();
        assert_eq!(timeline.iter().map(|t| t.count).sum::<u64>(), 1000);
        assert_eq!(timeline.first().map(|t| t.second), Some(0));
        let cdf = book.cdf();
        assert!(cdf.windows(2).all(|w| w[0].ms <= w[1].ms));
    }
}
