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
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line,
    /// for log collectors); `EASTWEST_LOG_FORMAT` overrides it. Levels: `EASTWEST_LOG`.
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive OTLP traces and logs, learn the baseline, detect, serve the API and dashboard.
    Serve(ServeArgs),
    /// Run `serve` on its defaults and feed it built-in mesh traffic followed by an attack.
    Demo(DemoArgs),
    /// Send Envoy/Istio access-log files (text or JSON lines) to an OTLP/HTTP receiver.
    IngestLogs(IngestLogsArgs),
    /// Generate a labelled scenario (OTLP traces + labels) into a directory.
    Gen(GenArgs),
    /// Replay OTLP trace files (or scenario directories) to an OTLP receiver.
    Replay(ReplayArgs),
    /// Convert public trace datasets (Nezha CSV, Zipkin v2 JSON) to OTLP files for replay.
    Convert(ConvertArgs),
    /// Run labelled scenarios through the runtime `serve` runs (in-process, through the
    /// receivers' admission path) and report recall and false alerts next to two
    /// reference rules.
    Eval(EvalArgs),
    /// Run SQL over the data dir: the call history (`calls`), its daily per-edge roll-ups
    /// (`daily_edges`, kept [storage] rollup_retention) and the newest baseline
    /// snapshot's tables (edges, endpoints, edge_contexts, endpoint_contexts, entries,
    /// sources, source_callees, fan_out, edge_rates, identities, principals).
    Sql(SqlArgs),
    /// Baseline maintenance.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Least-privilege authorization policies (Istio, NetworkPolicy, Cilium, Linkerd)
    /// from what was observed; backtests and drift over the call history.
    #[command(subcommand)]
    Policy(crate::policy::PolicyCommand),
    /// Audit evidence over a period: per-edge calls and mTLS coverage, plaintext calls
    /// with trace ids, principals per workload, policy coverage, every alert with who
    /// handled it and when, and the posture findings; from the call history and its daily
    /// roll-ups.
    Report(ReportArgs),
    /// Ranked, explained posture findings: blast radius per workload (default-allow vs
    /// least privilege), shared service accounts, plaintext and anonymous callers,
    /// exposed sensitive endpoints, edges leaving the mesh.
    Posture(PostureArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Period before now, e.g. 30d or 365d (days whose raw history expired come from the
    /// daily roll-ups).
    #[arg(long, value_name = "DUR", default_value = "30d", value_parser = humantime::parse_duration)]
    pub since: Duration,
    #[arg(long, value_name = "FORMAT", default_value = "html", value_parser = ["html", "json", "csv"])]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// TOML config whose `[detector]` sensitive patterns are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policies in force (YAML in any of the four dialects, as `policy backtest` reads
    /// them): the report shows per edge whether they cover its calls, and the share of
    /// calls they cover.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub policy: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PostureArgs {
    #[arg(long, value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Period of call history to analyse, before now.
    #[arg(long, value_name = "DUR", default_value = "7d", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// `table` (Markdown: the blast-radius summary and the top findings) or `json`.
    #[arg(long, value_name = "FORMAT", default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Mesh name for the table's first column.
    #[arg(long, value_name = "NAME")]
    pub mesh: Option<String>,
    /// Findings listed in the table.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// TOML config whose `[detector]` sensitive patterns are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Data dir written by `eastwest serve`.
    #[arg(long, value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// One SQL statement, e.g. "SELECT source, destination, calls FROM edges ORDER BY calls DESC".
    #[arg(value_name = "SQL")]
    pub query: String,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Relearn the baseline tables from the Parquet call history with DataFusion and write
    /// them as a new snapshot (run while `serve` is stopped; it loads the snapshot at start).
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[arg(long, value_name = "DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Only calls at or after this event time (RFC 3339, e.g. 2026-01-05T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only calls before this event time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// TOML config whose `[baseline]` section (window, caps, retention) is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Report what would be rebuilt without writing a snapshot.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct IngestLogsArgs {
    /// Access-log files (Istio default text format or its JSON encoding, one per line).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// OTLP/HTTP base URL (`/v1/logs` is appended).
    #[arg(long, value_name = "URL", default_value = eastwest_collector::ingest_logs::DEFAULT_INGEST_ENDPOINT)]
    pub to: String,
    /// Keep tailing the files (rotation and truncation aware) until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Service whose sidecar wrote the files (becomes `service.name`).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Namespace of that service (becomes `k8s.namespace.name`).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Log records per request.
    #[arg(long, default_value_t = eastwest_collector::ingest_logs::DEFAULT_BATCH_LINES)]
    pub batch_lines: usize,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Scenario name (see `eastwest gen --list`).
    #[arg(required_unless_present = "list", value_name = "SCENARIO")]
    pub scenario: Option<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Output directory (created; files in it are overwritten).
    #[arg(long, value_name = "DIR", required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// Seed: the same seed gives byte-identical output.
    #[arg(long)]
    pub seed: Option<u64>,
    /// `pb` (length-delimited protobuf) or `json` (OTLP/HTTP JSON lines).
    #[arg(long, value_name = "FORMAT", default_value = "pb", value_parser = ["pb", "json"])]
    pub format: String,
    /// Event time of normal traffic before the attack, e.g. 2h.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub learning: Option<Duration>,
    /// Event time from the attack's start to the end of the data, e.g. 1h.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub attack: Option<Duration>,
    /// Entry requests per second of event time.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// Mesh: `boutique` (Online Boutique), `trainticket` (41 services, REST), `large`
    /// (the 1,238-service Jaeger sample graph).
    #[arg(long, value_name = "NAME", default_value = "boutique", value_parser = ["boutique", "trainticket", "large"])]
    pub topology: String,
    /// For `--topology large`: a Jaeger dependencies JSON (`[{parent, child, callCount}]`)
    /// instead of the built-in graph.
    #[arg(long, value_name = "FILE")]
    pub topology_file: Option<PathBuf>,
    /// `istio` sidecar spans or plain OpenTelemetry `sdk` spans.
    #[arg(long, value_name = "STYLE", default_value = "istio", value_parser = ["istio", "sdk"])]
    pub spans: String,
    /// Also write Envoy access logs for every hop: `istio-text`, `istio-json`
    /// (access-logs/SERVICE.NAMESPACE.log) or `otlp-logs` (logs.pb / logs.json).
    #[arg(long, value_name = "FORMAT", value_parser = ["istio-text", "istio-json", "otlp-logs"])]
    pub access_logs: Option<String>,
    /// Keep about this share of the traces (`ot=th` threshold sampling), in (0, 1].
    #[arg(long, value_name = "R", default_value_t = 1.0)]
    pub sample_ratio: f64,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input format: `nezha` (span CSV) or `zipkin` (Zipkin v2 JSON array).
    #[arg(value_name = "FORMAT", value_parser = ["nezha", "zipkin"])]
    pub format: String,
    /// Input files (several Nezha CSVs go into one output).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output directory (gets traces.pb or traces.json).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// `pb` or `json`.
    #[arg(long, value_name = "FORMAT", default_value = "pb", value_parser = ["pb", "json"])]
    pub output_format: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// `.pb`/`.json` OTLP files (`logs*` files hold log records, others spans), or
    /// scenario directories (their `traces*` and `logs*` files).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// `http://HOST:4317` for gRPC, or `http://HOST:4318/v1/traces` for HTTP protobuf.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:4317")]
    pub to: String,
    /// Event time runs this many times faster than wall time (default: as fast as possible).
    #[arg(long, value_name = "X", conflicts_with = "max_rate")]
    pub speed: Option<f64>,
    /// At most this many spans (and log records) per second.
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
    /// Attempts after the first for retryable errors (UNAVAILABLE, 429, 503, …).
    #[arg(long, default_value_t = 5)]
    pub max_retries: u32,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Send the timestamps as recorded. By default telemetry older than a day is moved by
    /// whole days to end within the last day, since `serve` refuses records older than
    /// `[pipeline] max_age`.
    #[arg(long)]
    pub keep_time: bool,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = eastwest_datasets::REPLAY_IN_FLIGHT)]
    pub in_flight: usize,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Scenario directories written by `eastwest gen` (with `--dataset`: the dataset's
    /// folder).
    #[arg(value_name = "DIR", required_unless_present = "all")]
    pub dirs: Vec<PathBuf>,
    /// Evaluate on real traces: `nezha` reads a Nezha Online Boutique folder (DIR), lays
    /// its recorded windows on one timeline, learns on the first part and injects the
    /// attack and benign scenarios into the rest; its real faults stay unlabelled.
    #[arg(long, value_name = "FORMAT", value_parser = ["nezha"], conflicts_with = "all")]
    pub dataset: Option<String>,
    /// With `--dataset`: only the first N trace files, oldest first.
    #[arg(long, value_name = "N", requires = "dataset")]
    pub max_files: Option<usize>,
    /// With `--dataset`: share of the timeline used for learning [default: 0.4].
    #[arg(long, value_name = "SHARE", requires = "dataset")]
    pub learning_share: Option<f64>,
    /// Generate and evaluate the whole built-in scenario suite.
    #[arg(long, conflicts_with = "dirs")]
    pub all: bool,
    /// Seed for `--all` and `--dataset` (default: the generator's default seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Mesh for `--all`: `boutique`, `trainticket` or `large` (see `eastwest gen`);
    /// scenarios a mesh cannot host are listed as skipped.
    #[arg(long, value_name = "NAME", default_value = "boutique", requires = "all", value_parser = ["boutique", "trainticket", "large"])]
    pub topology: String,
    /// TOML config whose `[detector]` and `[baseline]` sections are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// After the table, list every false alert with its summary.
    #[arg(long)]
    pub explain: bool,
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
