//! The trace context of one bus hop: taken from the current span where a message is sent,
//! carried with the message (W3C `traceparent`/`tracestate` NATS headers in distributed mode,
//! in memory in embedded mode) and made the parent of the span that handles it, so one trace
//! follows a message through gateway, router, bot worker and back.
//!
//! Everything here is a no-op while tracing export is off ([`exporting`] is false): the carrier
//! stays empty, nothing is read from or written to headers, and no span is parented.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces (an OTLP endpoint was configured at start).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Turns trace-context handling on (called once the exporter is installed).
pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The span a message was sent from, or nothing. Small and allocation-free when empty.
///
/// It travels beside a payload and is never part of its value: any two compare equal, so
/// payloads that carry one (e.g. [`crate::bus::LogEntry`]) still compare by their content.
#[derive(Debug, Clone, Default)]
pub struct TraceContext(Option<SpanContext>);

impl PartialEq for TraceContext {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TraceContext {}

impl TraceContext {
    /// No context: the handling span starts its own trace (or follows its local parent).
    pub const fn none() -> Self {
        TraceContext(None)
    }

    /// The context of the current span, when exporting.
    pub fn current() -> Self {
        if !exporting() {
            return Self::none();
        }
        Self::from_otel(&tracing::Span::current().context())
    }

    /// The span context an OpenTelemetry context names, when it is valid.
    pub fn from_otel(cx: &Context) -> Self {
        let span_context = cx.span().span_context().clone();
        TraceContext(span_context.is_valid().then_some(span_context))
    }

    /// The carried span context, when there is one.
    pub fn span_context(&self) -> Option<&SpanContext> {
        self.0.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// An OpenTelemetry context with the carried span as its (remote) parent.
    pub fn to_otel(&self) -> Option<Context> {
        self.0
            .as_ref()
            .map(|sc| Context::new().with_remote_span_context(sc.clone()))
    }

    /// Makes the carried span the parent of `span`; call it before `span` is first entered.
    pub fn set_parent_of(&self, span: &tracing::Span) {
        if let Some(cx) = self.to_otel()
            && let Err(error) = span.set_parent(cx)
        {
            tracing::debug!(%error, "could not parent a span on its message's trace");
        }
    }
}

/// A span for a hot path (one per client frame, one per delivered entry): made only while
/// exporting, so that logging alone pays nothing for it.
#[macro_export]
macro_rules! export_span {
    ($($args:tt)*) => {
        if $crate::telemetry::trace_context::exporting() {
            ::tracing::info_span!($($args)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn an_invalid_context_carries_nothing() {
        assert!(TraceContext::from_otel(&Context::new()).is_empty());
        let valid = SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let carried = TraceContext::from_otel(&Context::new().with_remote_span_context(valid));
        assert_eq!(
            carried.span_context().map(|sc| sc.trace_id()),
            Some(TraceId::from(7))
        );
    }
}
