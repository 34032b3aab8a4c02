//! Labelled scenarios: mesh traffic (learning phase), then an injected attack or benign
//! change, with `labels.jsonl` and `scenario.json`.
//!
//! * `topology` — request trees per entry route (Online Boutique) and the types of all
//!   topologies; `trainticket` and `large` — the other two meshes.
//! * `spans` — the emitter: Istio sidecar or OpenTelemetry SDK spans.
//! * `logs` — Envoy access logs for every hop; `sampling` — `ot=th` probability sampling.
//! * `attacks` — the per-scenario injections and their labels.

mod attacks;
mod bodies;
#[cfg(test)]
mod exfil_tests;
mod large;
mod logs;
mod sampling;
mod spans;
mod topology;
mod trainticket;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use eastwest_model::Label;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::DatasetError;

pub use logs::AccessLogFormat;
pub use spans::SpanStyle;
pub use topology::TopologyKind;

pub(crate) use topology::Topology;

pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_LEARNING: Duration = Duration::from_secs(2 * 3600);
pub const DEFAULT_ATTACK: Duration = Duration::from_secs(3600);
pub const DEFAULT_RATE_PER_SEC: f64 = 1.0;
/// 2026-01-05T00:00:00Z: fixed so that output bytes depend only on the seed.
pub const DEFAULT_START_NS: i64 = 1_767_571_200_000_000_000;
const REQUESTS_PER_EXPORT: usize = 100;
const SEC: i64 = 1_000_000_000;

const SCENARIOS: &[&str] = &[
    "admin-endpoint",
    "fan-out",
    "probing",
    "context-anomaly",
    "new-endpoint",
    "plaintext",
    "identity-spoof",
    "multi-hop",
    "cloud-metadata",
    "bulk-read",
    "exfiltration",
    "benign-rollout",
    "benign-surge",
    "benign-new-pods",
    "benign-rare-path",
    "benign-jobs",
];

pub fn scenario_names() -> &'static [&'static str] {
    SCENARIOS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// `traces.pb`: length-delimited sequence of `ExportTraceServiceRequest`s.
    #[default]
    Pb,
    /// `traces.json`: OTLP/HTTP JSON, one request per line.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenOptions {
    pub seed: u64,
    #[serde(with = "humantime_serde")]
    pub learning: Duration,
    #[serde(with = "humantime_serde")]
    pub attack: Duration,
    /// Entry requests per second of event time (before the diurnal factor).
    pub rate_per_sec: f64,
    pub start_ns: i64,
    pub format: FileFormat,
    /// Which mesh (`boutique`, `trainticket`, `large`).
    pub topology: TopologyKind,
    /// For `large`: a Jaeger `/api/dependencies` JSON (`[{parent, child, callCount}]`)
    /// instead of the built-in 1,238-service graph.
    pub topology_file: Option<PathBuf>,
    /// Span flavour: `istio` sidecar spans or plain `sdk` spans.
    pub spans: SpanStyle,
    /// Also write Envoy access logs for every hop, in this encoding.
    pub access_logs: Option<AccessLogFormat>,
    /// Keep about this share of the traces (consistent probability sampling, `ot=th`).
    pub sample_ratio: f64,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            learning: DEFAULT_LEARNING,
            attack: DEFAULT_ATTACK,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            start_ns: DEFAULT_START_NS,
            format: FileFormat::Pb,
            topology: TopologyKind::Boutique,
            topology_file: None,
            spans: SpanStyle::Istio,
            access_logs: None,
            sample_ratio: 1.0,
        }
    }
}

impl GenOptions {
    pub fn validate(&self) -> Result<(), DatasetError> {
        if !(self.rate_per_sec > 0.0 && self.rate_per_sec <= 10_000.0) {
            return Err(DatasetError::InvalidOptions(
                "rate_per_sec must be in (0, 10000]".into(),
            ));
        }
        if self.learning < Duration::from_secs(60) || self.attack < Duration::from_secs(60) {
            return Err(DatasetError::InvalidOptions(
                "learning and attack must be at least 1m".into(),
            ));
        }
        if !(self.sample_ratio > 0.0 && self.sample_ratio <= 1.0) {
            return Err(DatasetError::InvalidOptions(
                "sample_ratio must be in (0, 1]".into(),
            ));
        }
        if self.topology_file.is_some() && self.topology != TopologyKind::Large {
            return Err(DatasetError::InvalidOptions(
                "topology_file is only read for the large topology".into(),
            ));
        }
        Ok(())
    }

    fn build_topology(&self) -> Result<Topology, DatasetError> {
        match self.topology {
            TopologyKind::Boutique => Ok(topology::boutique()),
            TopologyKind::Trainticket => Ok(trainticket::trainticket()),
            TopologyKind::Large => match &self.topology_file {
                None => large::large_builtin(),
                Some(p) => large::large_from_file(p),
            },
        }
    }
}

fn is_default_style(s: &SpanStyle) -> bool {
    *s == SpanStyle::Istio
}

fn is_full_ratio(r: &f64) -> bool {
    *r == 1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioMeta {
    pub name: String,
    pub seed: u64,
    pub topology: String,
    pub format: FileFormat,
    /// Learning period to give the detector, e.g. `2h`.
    pub learning_period: String,
    pub learning_start: DateTime<Utc>,
    pub attack_start: DateTime<Utc>,
    pub attack_end: DateTime<Utc>,
    /// Traces and spans written (after sampling).
    pub traces: u64,
    pub spans: u64,
    pub requests: u64,
    /// Span flavour (absent = `istio`).
    #[serde(default, skip_serializing_if = "is_default_style")]
    pub span_style: SpanStyle,
    /// Access-log encoding and lines written, when access logs were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logs: Option<AccessLogFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_lines: Option<u64>,
    /// Sampling ratio (absent = 1, every trace).
    #[serde(default = "one", skip_serializing_if = "is_full_ratio")]
    pub sample_ratio: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenSummary {
    pub meta: ScenarioMeta,
    pub labels: usize,
}

/// Generates scenario `name` into `out` (created if missing).
pub fn generate(name: &str, opts: &GenOptions, out: &Path) -> Result<GenSummary, DatasetError> {
    opts.validate()?;
    if !SCENARIOS.contains(&name) {
        return Err(DatasetError::UnknownScenario(name.into()));
    }
    let topo = opts.build_topology()?;
    let (reqs, labels, meta, logs) = build(name, opts, &topo)?;
    std::fs::create_dir_all(out).map_err(|e| DatasetError::io(out, e))?;
    write_traces(out, opts.format, &reqs)?;
    if let Some(logs) = logs {
        logs.write(out, &topo.namespace, opts.format)?;
    }
    let mut lines = String::new();
    for l in &labels {
        lines.push_str(&serde_json::to_string(l).expect("label serialises"));
        lines.push('\n');
    }
    let lp = out.join("labels.jsonl");
    std::fs::write(&lp, lines).map_err(|e| DatasetError::io(&lp, e))?;
    let mp = out.join("scenario.json");
    std::fs::write(
        &mp,
        serde_json::to_string_pretty(&meta).expect("meta serialises"),
    )
    .map_err(|e| DatasetError::io(&mp, e))?;
    Ok(GenSummary {
        meta,
        labels: labels.len(),
    })
}

pub(crate) fn write_traces(
    out: &Path,
    format: FileFormat,
    reqs: &[ExportTraceServiceRequest],
) -> Result<(), DatasetError> {
    let (path, bytes) = match format {
        FileFormat::Pb => {
            let mut buf = Vec::new();
            for r in reqs {
                r.encode_length_delimited(&mut buf).expect("vec grows");
            }
            (out.join("traces.pb"), buf)
        }
        FileFormat::Json => {
            let mut buf = Vec::new();
            for r in reqs {
                serde_json::to_writer(&mut buf, r).map_err(|e| DatasetError::BadFile {
                    path: out.into(),
                    detail: e.to_string(),
                })?;
                buf.write_all(b"\n").expect("vec grows");
            }
            (out.join("traces.json"), buf)
        }
    };
    std::fs::write(&path, bytes).map_err(|e| DatasetError::io(&path, e))
}

type Built = (
    Vec<ExportTraceServiceRequest>,
    Vec<Label>,
    ScenarioMeta,
    Option<logs::LogSink>,
);

pub(crate) fn build(name: &str, opts: &GenOptions, topo: &Topology) -> Result<Built, DatasetError> {
    if opts.spans == SpanStyle::Sdk
        && opts.access_logs.is_none()
        && matches!(name, "plaintext" | "identity-spoof")
    {
        return Err(DatasetError::InvalidOptions(format!(
            "{name} needs mesh identities: SDK spans carry none (add access logs or use istio spans)"
        )));
    }
    let mut g = spans::Gen::new(
        StdRng::seed_from_u64(opts.seed),
        topo.namespace.clone(),
        opts.spans,
        sampling::Sampler::new(opts.sample_ratio),
    );
    g.literal_entry_urls = topo.literal_entry_urls;
    g.logs = opts.access_logs.map(logs::LogSink::new);
    let start = opts.start_ns;
    let attack_start = start + opts.learning.as_nanos() as i64;
    let attack_end = attack_start + opts.attack.as_nanos() as i64;
    let labels = attacks::run(
        name,
        &mut g,
        topo,
        opts.rate_per_sec,
        start,
        attack_start,
        attack_end,
    )?;
    g.flush();
    let out = crate::otlp::in_end_time_order(std::mem::take(&mut g.out));
    let logs = g.logs.take();
    let meta = ScenarioMeta {
        name: name.into(),
        seed: opts.seed,
        topology: topo.name.clone(),
        format: opts.format,
        learning_period: humantime::format_duration(opts.learning).to_string(),
        learning_start: DateTime::from_timestamp_nanos(start),
        attack_start: DateTime::from_timestamp_nanos(attack_start),
        attack_end: DateTime::from_timestamp_nanos(attack_end),
        traces: g.traces,
        spans: g.span_count,
        requests: out.len() as u64,
        span_style: opts.spans,
        access_logs: opts.access_logs,
        access_log_lines: logs.as_ref().map(|l| l.lines),
        sample_ratio: opts.sample_ratio,
    };
    Ok((out, labels, meta, logs))
}
