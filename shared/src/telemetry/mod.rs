//! Logging and tracing setup for every binary: `RUST_LOG` filters, `LOG_FORMAT` picks pretty or
//! JSON lines, and when `OTEL_EXPORTER_OTLP_ENDPOINT` is set the same spans are also exported
//! over OTLP ([`crate::telemetry::otel`]) under the binary's service name.

pub(crate) mod calls;
pub mod otel;
mod otel_http;
pub mod trace_context;

use clap::ValueEnum;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::telemetry::otel::{OtelError, OtelExport, export_layer};

/// Service names of the three binaries, as traces show them.
pub const GATEWAY_SERVICE: &str = "chat-gateway";
pub const ROUTER_SERVICE: &str = "chat-router";
pub const BOT_SERVICE: &str = "chat-bot";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

type Filtered = tracing_subscriber::layer::Layered<EnvFilter, Registry>;
type FmtLayer = Box<dyn Layer<Filtered> + Send + Sync>;

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn fmt_layer(format: LogFormat) -> FmtLayer {
    let layer = tracing_subscriber::fmt::layer();
    match format {
        LogFormat::Pretty => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    }
}

/// Installs the global subscriber (logs only). Safe to call more than once (later calls do
/// nothing).
pub fn init_tracing(format: LogFormat) {
    let _ = tracing_subscriber::registry()
        .with(env_filter())
        .with(fmt_layer(format))
        .try_init();
}

/// Installs the global subscriber: logs, plus OTLP trace export as `service_name` when
/// `otlp_endpoint` is set (and not blank). Call it inside the tokio runtime and hold the
/// returned export until the process ends (`shutdown().await` flushes it); `None` when export
/// is off, which costs nothing.
pub fn init_telemetry(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    service_name: &'static str,
) -> Result<Option<OtelExport>, OtelError> {
    let endpoint = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty());
    let (export, otel_layer) = match endpoint {
        Some(endpoint) => {
            let (export, layer) = export_layer(endpoint, service_name)?;
            (Some(export), Some(layer))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(env_filter())
        .with(fmt_layer(format))
        .with(otel_layer)
        .try_init();
    Ok(export)
}

/// An error and its causes on one line, `a: b: c`, for logs and error messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
