//! Running a configured scenario: raise the open-file limit, validate, then run the scenario
//! under the hard time limit.

use crate::config::{CeilingMode, RunConfig, Scenario};
use crate::error::LoadTestError;
use crate::limits::raise_open_file_limit;
use crate::report::Report;
use crate::scenarios::{Setup, abuse, abusers, ceiling, fanout, idle, storm};
use crate::watch::Watcher;

/// Runs `config` to the end and returns its report. A serve-only ceiling returns an empty
/// report when its time is up.
pub async fn run(config: &RunConfig) -> Result<Report, LoadTestError> {
    let fd_limit = raise_open_file_limit()?;
    config.validate(fd_limit)?;
    let cap = config.effective_timeout();
    if let Scenario::Ceiling {
        mode: CeilingMode::ServeOnly(addr),
        ..
    } = &config.scenario
    {
        ceiling::serve_only(*addr, cap).await?;
        return Ok(Report::default());
    }
    tokio::time::timeout(cap, run_scenario(config))
        .await
        .map_err(|_| LoadTestError::Timeout(cap))?
}

async fn run_scenario(config: &RunConfig) -> Result<Report, LoadTestError> {
    let setup = || async {
        let watcher = Watcher::resolve(&config.watch)?;
        Setup::new(config, &config.targets, watcher).await
    };
    match &config.scenario {
        Scenario::Idle(shape) => idle::run(config, shape, setup().await?, &config.users).await,
        Scenario::Fanout(shape) => fanout::run(config, shape, setup().await?, &config.users).await,
        Scenario::Storm(shape) => storm::run(config, shape, setup().await?, &config.users).await,
        Scenario::Abuse(shape) => {
            let setups = abuse::Setups {
                baseline: setup().await?,
                abused: setup().await?,
                after: setup().await?,
            };
            abuse::run(config, shape, setups, &config.users).await
        }
        Scenario::Abusers {
            stop_on_stdin_eof, ..
        } => {
            abusers::run(config, setup().await?, *stop_on_stdin_eof).await?;
            Ok(Report::default())
        }
        Scenario::Ceiling { shape, mode } => match mode {
            CeilingMode::InProcess => ceiling::run_in_process(config, shape).await,
            CeilingMode::External | CeilingMode::ServeOnly(_) => {
                ceiling::run_external(config, shape).await
            }
        },
    }
}
