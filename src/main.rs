//! `eastwest`: the command line and config loading. Library crates own the behaviour
//! (`eastwest-runtime` the pipeline every command drives); this binary calls them.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod config;
mod data;
mod demo;
mod eval;
mod policy;
mod report;
mod tools;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::anyhow;
use clap::{Parser, ValueEnum};

use crate::cli::{Cli, Command, LogFormat};

/// Ingest decodes requests on receiver threads and frees them on the pipeline thread;
/// mimalloc handles that cross-thread churn far better than the system allocator. Its
/// purge delay stays at mimalloc's default (1 s): a longer one saves page faults at a
/// steady load, but keeps that much longer's worth of refused requests' freed bodies
/// resident beyond what the receivers' memory budget admits.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging(cli.log_format) {
        eprintln!("Error: {error:#}");
        return ExitCode::FAILURE;
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // The reason a pod exits is the log line an operator looks for: in JSON, one more
        // event, not a plain line the log collector cannot parse.
        Err(error) if logs_are_json() => {
            tracing::error!(error = format!("{error:#}"), "eastwest failed");
            ExitCode::FAILURE
        }
        // As `main` returning the error would print it.
        Err(error) => {
            eprintln!("Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Serve(args) => commands::serve(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::IngestLogs(args) => tools::ingest_logs(args).await,
            Command::Gen(args) => tools::gen_scenario(args),
            Command::Replay(args) => tools::replay(args).await,
            Command::Convert(args) => tools::convert(args),
            Command::Eval(args) => eval::run(args).await,
            Command::Sql(args) => data::sql(args).await,
            Command::Baseline(cli::BaselineCommand::Rebuild(args)) => data::rebuild(args).await,
            Command::Policy(command) => policy::run(command).await,
            Command::Report(args) => report::report(args).await,
            Command::Posture(args) => report::posture(args).await,
        }
    })
}

static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Whether log lines are JSON: then `serve` reports its addresses as a log event rather
/// than a plain line, so every line on stderr parses.
pub fn logs_are_json() -> bool {
    LOG_FORMAT.get() == Some(&LogFormat::Json)
}

/// `EASTWEST_LOG_FORMAT` over `--log-format`: environment variables override flags, as
/// for every other setting. Empty counts as unset.
fn resolve_log_format(flag: LogFormat, env: Option<&str>) -> anyhow::Result<LogFormat> {
    match env.filter(|v| !v.is_empty()) {
        None => Ok(flag),
        Some(v) => LogFormat::from_str(v, true)
            .map_err(|_| anyhow!("EASTWEST_LOG_FORMAT: expected text or json, got {v:?}")),
    }
}

fn init_logging(flag: LogFormat) -> anyhow::Result<()> {
    let format = resolve_log_format(flag, std::env::var("EASTWEST_LOG_FORMAT").ok().as_deref())?;
    let _ = LOG_FORMAT.set(format);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EASTWEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A failed write would be reported with `eprintln!`, which panics when stderr is
        // gone (`serve 2>&1 | head`): the panic took down whichever task was logging,
        // e.g. the signal handler, and the process no longer stopped on SIGTERM.
        .log_internal_errors(false);
    match format {
        LogFormat::Json => {
            builder.json().init();
            // A panic (a failed pipeline stage) is logged as an event too.
            std::panic::set_hook(Box::new(|info| {
                let backtrace = std::backtrace::Backtrace::capture();
                if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                    tracing::error!(panic = %info, %backtrace, "panic");
                } else {
                    tracing::error!(panic = %info, "panic");
                }
            }));
        }
        // Colour only where a person reads it: escape codes in a file, a pipe or a
        // container log are noise every line. NO_COLOR (https://no-color.org) is honoured
        // on a terminal too; setting `with_ansi` replaces tracing-subscriber's own check.
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init()
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_flag() {
        assert_eq!(
            resolve_log_format(LogFormat::Text, Some("json")).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            resolve_log_format(LogFormat::Json, Some("TEXT")).unwrap(),
            LogFormat::Text
        );
        assert_eq!(
            resolve_log_format(LogFormat::Json, Some("")).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            resolve_log_format(LogFormat::Text, None).unwrap(),
            LogFormat::Text
        );
        let err = resolve_log_format(LogFormat::Text, Some("yaml")).unwrap_err();
        assert!(err.to_string().contains("EASTWEST_LOG_FORMAT"), "{err}");
    }
}
