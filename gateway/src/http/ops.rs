//! The handlers of `/healthz`, `/readyz` (public port and ops listener) and `/metrics` (ops
//! listener only, see [`crate::ops_listener`]).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    "ok"
}

/// 200 only when the bus and the session store answer and the gateway is not draining.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state
        .health
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if state.dependencies_live().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "dependencies unavailable")
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
