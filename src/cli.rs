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
    /// Send Envoy/Istio access-log files to a running eastwest as OTLP log records.
    IngestLogs(IngestLogsArgs),
    /// Replay OTLP files (from `gen` or converters) to an OTLP endpoint.
    Replay(ReplayArgs),
    /// Generate a labelled scenario (`gen --list` lists them).
    Gen(GenArgs),
    /// Evaluate detection quality on a labelled scenario directory (or `--all`).
    Eval(EvalArgs),
    /// Run SQL over the call history (`calls`) and baseline tables with DataFusion.
    Sql(SqlArgs),
    /// Baseline maintenance.
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
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

#[derive(Debug, Args)]
pub struct IngestLogsArgs {
    /// Access-log files (Istio text or JSON lines).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Keep reading as the files grow.
    #[arg(long, short)]
    pub follow: bool,
    /// eastwest OTLP HTTP endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub to: String,
    /// Service name of the workload whose proxy wrote the log (when lines do not say).
    #[arg(long)]
    pub service: Option<String>,
    /// Namespace of that workload.
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Scenario directories or OTLP files (.pb / .json).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// OTLP endpoint: http://HOST:4317 (gRPC) or http://HOST:4318 (HTTP).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub to: String,
    /// Replay speed relative to event time (e.g. 60 = one hour per minute); default: as fast as possible.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Maximum spans per second.
    #[arg(long)]
    pub max_rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Scenario name (see --list).
    pub scenario: Option<String>,
    /// List the scenarios.
    #[arg(long)]
    pub list: bool,
    /// Output directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled scenario directory (from `eastwest gen`).
    pub dir: Option<PathBuf>,
    /// Generate and evaluate the whole built-in scenario suite.
    #[arg(long)]
    pub all: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[arg(long, default_value = "./eastwest-data")]
    pub data_dir: PathBuf,
    /// The query, e.g. "SELECT source, destination, calls FROM edges ORDER BY calls DESC LIMIT 10".
    pub query: String,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Rebuild the baseline from the Parquet call history with DataFusion.
    Rebuild {
        #[arg(long, default_value = "./eastwest-data")]
        data_dir: PathBuf,
        /// RFC 3339 start of the history to use.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 end of the history to use.
        #[arg(long)]
        until: Option<String>,
    },
}
