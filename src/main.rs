//! `eastwest`: the command line and config loading. Library crates own the behaviour
//! (`eastwest-runtime` the pipeline every command drives); this binary calls them.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod config;
mod data;
mod demo;
mod eval;
mod tools;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Ingest decodes requests on receiver threads and frees them on the pipeline thread;
/// mimalloc handles that cross-thread churn far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EASTWEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::IngestLogs(args) => tools::ingest_logs(args).await,
            Command::Gen(args) => tools::gen_scenario(args),
            Command::Replay(args) => tools::replay(args).await,
            Command::Convert(args) => tools::convert(args),
            Command::Eval(args) => eval::run(args).await,
            Command::Sql(args) => data::sql(args).await,
            Command::Baseline(cli::BaselineCommand::Rebuild(args)) => data::rebuild(args).await,
        }
    })
}
