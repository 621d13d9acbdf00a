//! `ceiling`: the fanout load against the bare broadcast server ([`crate::ceiling_server`]),
//! started in this process on its own named threads (so its CPU is measured apart from the
//! load generator's), or standalone (`--ceiling-listen`) for another loadtest process to drive.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Setup, fanout};
use crate::ceiling_server::{self, InProcessCeiling, THREAD_PREFIX};
use crate::config::{LoadShape, RunConfig, UserSource};
use crate::error::LoadTestError;
use crate::report::Report;
use crate::watch::{WatchTarget, Watcher};

/// Starts the bare server here and drives it with the fanout load.
pub async fn run_in_process(
    config: &RunConfig,
    shape: &LoadShape,
) -> Result<Report, LoadTestError> {
    let server = InProcessCeiling::start().map_err(LoadTestError::Ceiling)?;
    let mut watch = config.watch.clone();
    watch.push(WatchTarget::OwnThreads(THREAD_PREFIX.to_owned()));
    let result = async {
        let watcher = Watcher::resolve(&watch)?;
        let setup = Setup::new(config, &[server.url()], watcher).await?;
        fanout::run(config, shape, setup, &UserSource::Open).await
    }
    .await;
    server.stop().await;
    result
}

/// Drives a ceiling server that runs elsewhere (the configured targets).
pub async fn run_external(config: &RunConfig, shape: &LoadShape) -> Result<Report, LoadTestError> {
    let watcher = Watcher::resolve(&config.watch)?;
    let setup = Setup::new(config, &config.targets, watcher).await?;
    fanout::run(config, shape, setup, &UserSource::Open).await
}

/// Serves the bare server on `addr` for `serve_for`, then stops.
pub async fn serve_only(addr: SocketAddr, serve_for: Duration) -> Result<(), LoadTestError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(LoadTestError::Ceiling)?;
    let local = listener.local_addr().map_err(LoadTestError::Ceiling)?;
    tracing::info!(%local, pid = std::process::id(), "ceiling server listening on ws://{local}/ws");
    let stop = CancellationToken::new();
    let timer = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(serve_for) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        timer.cancel();
    });
    ceiling_server::serve(listener, stop)
        .await
        .map_err(LoadTestError::Ceiling)
}
