//! Command-line surface. Flags override the config file; `EASTWEST_*` environment
//! variables override both (the design's contract).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "eastwest",
    version,
    about = "Lateral-movement detector for service meshes",
    long_about = "eastwest learns who normally calls whom in a service mesh from the traces and \
proxy access logs the mesh already produces, and raises scored, explained alerts when a \
workload calls something it never called before, fans out, probes, or reaches an admin \
endpoint.\n\nPoint an OpenTelemetry Collector (or any OTLP exporter) at it:\n  \
eastwest serve                 # OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP), dashboard on :4320\n  \
eastwest demo                  # the same, fed with built-in mesh traffic and an attack"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive OTLP traces and logs, learn the baseline, detect, serve the API and dashboard.
    Serve(ServeArgs),
    /// Run `serve` on its defaults and feed it built-in mesh traffic followed by an attack.
    Demo(DemoArgs),
}

#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// OTLP gRPC listen address (traces + logs services) [default: 127.0.0.1:4317]
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP HTTP listen address (/v1/traces, /v1/logs) [default: 127.0.0.1:4318]
    #[arg(long, value_name = "ADDR")]
    pub otlp_http: Option<SocketAddr>,
    /// API and dashboard listen address [default: 127.0.0.1:4320]
    #[arg(long, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// Where alerts, call history and baseline snapshots live [default: ./eastwest-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Event time to learn before detecting, e.g. 90m or 24h [default: 24h]
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub learning_period: Option<Duration>,
    /// Bearer token required on /api/v1/* (without one the API binds to loopback only)
    #[arg(long, value_name = "TOKEN")]
    pub api_token: Option<String>,
    /// Allow binding the API to a non-loopback address without a token
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// TOML config file (see eastwest.example.toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Seed for the generated traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Stop after this long (default: run until interrupted).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}
