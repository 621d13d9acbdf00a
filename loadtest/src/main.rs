//! The `loadtest` binary: parse the command line, run the scenario with a live progress bar,
//! print the tables, and write `--json` / `--plot` when asked.

mod cli;

use anyhow::Context;
use clap::Parser;
use loadtest::plot::write_svg;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(error) = run(&cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    chat_shared::telemetry::init_tracing(chat_shared::telemetry::LogFormat::Pretty);
    let config = cli.run_config();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(loadtest::run(&config))?;
    if report.run.scenario.is_empty() {
        return Ok(());
    }
    println!("{}", report.render());
    if let Some(path) = &cli.global.json {
        let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        std::fs::write(path, json).with_context(|| format!("cannot write {path}"))?;
    }
    if let Some(path) = &cli.global.plot {
        write_svg(&report, path)?;
    }
    Ok(())
}
