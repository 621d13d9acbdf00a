//! W3C trace context (`traceparent`, `tracestate`) in NATS message headers: written on every
//! publish and request the bus makes, read where a message is consumed; and in a payload's
//! [`WireTrace`] fields where one message carries several sends, each with its own span. Only
//! while this process exports traces; otherwise nothing is written or read.

use async_nats::HeaderMap;
use async_nats::header::HeaderName;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::payload::WireTrace;
use crate::telemetry::trace_context::{TraceContext, exporting};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The header name of a propagation key, without allocating for the two W3C keys.
fn header_name(key: &str) -> Option<HeaderName> {
    match key {
        TRACEPARENT => Some(HeaderName::from_static(TRACEPARENT)),
        TRACESTATE => Some(HeaderName::from_static(TRACESTATE)),
        _ => None,
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let Some(name) = header_name(key) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        header_name(key)
            .and_then(|name| self.0.get(name))
            .map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        [TRACEPARENT, TRACESTATE]
            .into_iter()
            .filter(|key| self.get(key).is_some())
            .collect()
    }
}

impl Injector for WireTrace {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for WireTrace {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        [TRACEPARENT, TRACESTATE]
            .into_iter()
            .filter(|key| self.get(key).is_some())
            .collect()
    }
}

/// The current span's context as payload fields (empty when there is nothing to carry).
pub fn current_fields() -> WireTrace {
    let mut fields = WireTrace::default();
    if let Some(cx) = TraceContext::current().to_otel() {
        TraceContextPropagator::new().inject_context(&cx, &mut fields);
    }
    fields
}

/// The context payload fields carry (empty when export is off or they carry none).
pub fn extract_fields(fields: &WireTrace) -> TraceContext {
    if !exporting() || fields.traceparent.is_none() {
        return TraceContext::none();
    }
    TraceContext::from_otel(&TraceContextPropagator::new().extract(fields))
}

/// Writes `context` into `headers` (nothing when it is empty).
pub fn inject(context: &TraceContext, headers: &mut HeaderMap) {
    if let Some(cx) = context.to_otel() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// Headers carrying the current span's context, or `None` when there is nothing to carry
/// (export off, or no span), so the caller publishes without headers.
pub fn current_headers() -> Option<HeaderMap> {
    let context = TraceContext::current();
    if context.is_empty() {
        return None;
    }
    let mut headers = HeaderMap::new();
    inject(&context, &mut headers);
    Some(headers)
}

/// Adds the current span's context to headers the caller already builds.
pub fn add_current(headers: &mut HeaderMap) {
    inject(&TraceContext::current(), headers);
}

/// The context a received message carries (empty when export is off or it carries none).
pub fn extract(headers: Option<&HeaderMap>) -> TraceContext {
    match headers {
        Some(headers) if exporting() => TraceContext::from_otel(
            &TraceContextPropagator::new().extract(&HeaderExtractor(headers)),
        ),
        _ => TraceContext::none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Context;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    #[test]
    fn a_context_survives_the_headers() {
        let sent = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
            SpanId::from(0xb7ad6b7169203331_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let carried =
            TraceContext::from_otel(&Context::new().with_remote_span_context(sent.clone()));
        let mut headers = HeaderMap::new();
        inject(&carried, &mut headers);
        assert_eq!(
            headers.get(TRACEPARENT).map(|v| v.as_str()),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        let received = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        assert_eq!(received.span().span_context(), &sent);
    }
}
