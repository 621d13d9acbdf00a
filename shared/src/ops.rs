//! The small operations server of the worker binaries: `/healthz` (alive), `/readyz` (the bus
//! answers and the worker is not stopping) and `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the operations endpoints look at.
#[derive(Clone)]
pub struct OpsState {
    pub bus: Arc<dyn Bus>,
    pub registry: Arc<Registry>,
    pub stopping: Arc<AtomicBool>,
}

/// Serves the operations endpoints on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    state: OpsState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    if state.stopping.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    match tokio::time::timeout(PROBE_TIMEOUT, state.bus.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable"),
    }
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &state.registry).is_err() {
        out.clear();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Why a worker process ended badly.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("operations server: {0}")]
    Ops(#[from] std::io::Error),
    #[error("worker: {0}")]
    Work(#[from] crate::bus::BusError),
    #[error("task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The life every worker binary shares: the operations server runs on `ops` (bound by the
/// caller, so a taken address fails the start and the address it got can be printed) beside
/// `work` until SIGTERM or Ctrl-C; then `/readyz` fails, `stop` fires, and both are awaited.
pub async fn run_worker<W>(
    ops: TcpListener,
    bus: Arc<dyn Bus>,
    registry: Registry,
    stop: CancellationToken,
    work: W,
) -> Result<(), WorkerError>
where
    W: std::future::Future<Output = Result<(), crate::bus::BusError>> + Send + 'static,
{
    let state = OpsState {
        bus,
        registry: Arc::new(registry),
        stopping: Default::default(),
    };
    let stopping = state.stopping.clone();
    let ops_server = tokio::spawn(serve(ops, state, stop.clone()));
    let work = tokio::spawn(work);
    shutdown_signal().await;
    stopping.store(true, Ordering::Relaxed);
    stop.cancel();
    work.await??;
    ops_server.await??;
    Ok(())
}

/// Logging and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, trace export: started first thing
/// in a binary's `main` (inside the runtime) and finished last, so queued spans are sent.
#[must_use = "finish it when the process ends, or queued spans are lost"]
pub struct Telemetry {
    export: Option<crate::telemetry::otel::OtelExport>,
}

impl Telemetry {
    /// Installs the global subscriber for `service_name` (`chat-gateway`, `chat-router`,
    /// `chat-bot`); fails only on a bad endpoint.
    pub fn start(
        common: &crate::config::CommonConfig,
        service_name: &'static str,
    ) -> Result<Self, crate::telemetry::otel::OtelError> {
        let export = crate::telemetry::init_telemetry(
            common.log_format,
            common.otel_exporter_otlp_endpoint.as_deref(),
            service_name,
        )?;
        Ok(Telemetry { export })
    }

    /// Sends the spans still queued and stops the exporter.
    pub async fn finish(self) {
        if let Some(export) = self.export {
            export.shutdown().await;
        }
    }
}
