//! Per-operation call durations and error counts. The label handles are resolved once, when
//! registered, so timing a call costs one clock read, one histogram observe and, on failure,
//! one counter increment: no allocation per call.

use std::future::Future;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

type OpLabel = [(&'static str, &'static str); 1];

/// The duration histogram and error counter of one operation.
#[derive(Debug, Clone)]
struct OpMetrics {
    duration: Histogram,
    errors: Counter,
}

/// Durations and errors of every operation of one dependency, indexed like `ops`.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    ops: Vec<OpMetrics>,
}

impl CallMetrics {
    /// Registers `{prefix}_call_duration_seconds{op}` and `{prefix}_call_errors_total{op}` in
    /// `registry`, with a series for each of `ops` from the start.
    pub(crate) fn register(
        registry: &mut Registry,
        prefix: &str,
        what: &str,
        ops: &[&'static str],
        histogram: fn() -> Histogram,
    ) -> Self {
        let durations =
            Family::<OpLabel, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let errors = Family::<OpLabel, Counter>::default();
        let resolved = ops
            .iter()
            .map(|op| OpMetrics {
                duration: durations.get_or_create_owned(&[("op", op)]),
                errors: errors.get_or_create_owned(&[("op", op)]),
            })
            .collect();
        let sub = registry.sub_registry_with_prefix(prefix);
        sub.register_with_unit(
            "call_duration",
            format!("Duration of {what} calls, by operation"),
            Unit::Seconds,
            durations,
        );
        sub.register(
            "call_errors",
            format!("{what} calls that failed, by operation"),
            errors,
        );
        CallMetrics { ops: resolved }
    }

    /// Awaits `call`, recording its duration under operation number `op`, and an error when
    /// it fails.
    pub(crate) async fn time<T, E>(
        &self,
        op: usize,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        self.timed(op, started, result)
    }

    /// Records a call of `op` that began at `started` and ended now with `result`.
    pub(crate) fn timed<T, E>(
        &self,
        op: usize,
        started: Instant,
        result: Result<T, E>,
    ) -> Result<T, E> {
        if let Some(metrics) = self.ops.get(op) {
            metrics.duration.observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                metrics.errors.inc();
            }
        }
        result
    }
}
