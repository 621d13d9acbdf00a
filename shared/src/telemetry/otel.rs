//! Trace export: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans go to that OTLP collector
//! over HTTP/protobuf (`{endpoint}/v1/traces`, as the OpenTelemetry spec builds it from the
//! base endpoint), batched on the SDK's own thread, under the binary's service name. The
//! returned [`OtelExport`] flushes what is still queued when the process ends.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::telemetry::otel_http::RuntimeHttpClient;

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The OTLP/HTTP path of traces under the base endpoint.
const TRACES_PATH: &str = "/v1/traces";

#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error(
        "OTEL_EXPORTER_OTLP_ENDPOINT {0:?} is not an http:// URL (only plain HTTP/protobuf is supported)"
    )]
    Endpoint(String),
    #[error("trace export needs a tokio runtime: start it inside the runtime")]
    NoRuntime,
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// The installed exporter; flushes and stops it when dropped or shut down.
#[derive(Debug)]
pub struct OtelExport {
    provider: SdkTracerProvider,
}

impl OtelExport {
    /// Exports what is queued and stops the exporter, without blocking the runtime's threads.
    pub async fn shutdown(self) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || flush(&provider)).await;
    }
}

impl Drop for OtelExport {
    fn drop(&mut self) {
        flush(&self.provider);
    }
}

fn flush(provider: &SdkTracerProvider) {
    // A second shutdown (after `shutdown()`) reports "already shut down": nothing to do.
    let _ = provider.shutdown();
}

/// The traces URL of a base endpoint: `http://host:4318` → `http://host:4318/v1/traces`.
pub fn traces_url(endpoint: &str) -> Result<String, OtelError> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let valid = trimmed
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.is_empty())
        && trimmed.parse::<http::Uri>().is_ok();
    if !valid {
        return Err(OtelError::Endpoint(endpoint.to_owned()));
    }
    if trimmed.ends_with(TRACES_PATH) {
        return Ok(trimmed.to_owned());
    }
    Ok(format!("{trimmed}{TRACES_PATH}"))
}

/// Builds the exporter for `endpoint` and the `tracing` layer that feeds it.
pub fn export_layer<S>(
    endpoint: &str,
    service_name: &'static str,
) -> Result<(OtelExport, impl Layer<S> + Send + Sync + 'static), OtelError>
where
    S: tracing::Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
{
    let url = traces_url(endpoint)?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtelError::NoRuntime)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeHttpClient::new(runtime, EXPORT_TIMEOUT))
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build();
    let tracer = provider.tracer(service_name);
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    crate::telemetry::trace_context::set_exporting();
    Ok((OtelExport { provider }, layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert!(traces_url("https://c:4318").is_err());
        assert!(traces_url("c:4318").is_err());
        assert!(traces_url("http://").is_err());
    }
}
