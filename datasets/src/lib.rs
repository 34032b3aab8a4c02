//! Data for measuring eastwest. This crate owns the mesh traffic generator
//! (topologies, load shapes, rollouts, jobs, sampling), the labelled attack and
//! benign-change scenarios, converters from public trace formats (Nezha CSV, Zipkin v2)
//! to OTLP, evaluation suites built on real traces (`real`: recorded windows on one
//! timeline, attacks injected in the recorded style), and replay of OTLP files (or of
//! requests already encoded) to a receiver. It does not detect or learn.
#![forbid(unsafe_code)]

mod convert;
mod demo;
mod encoded;
mod error;
mod otlp;
mod read;
mod real;
mod replay;
mod retime;
mod scenario;
mod sink;

pub use convert::{convert_nezha_csv, convert_zipkin_json, service_from_pod};
pub use demo::{DEMO_LEARNING_PERIOD, DemoFeed, demo_feed, demo_feed_at};
pub use eastwest_collector::otlp::{log_record_count, span_count};
pub use encoded::{RawCodec, TRACES_EXPORT_PATH, export_encoded_traces};
pub use error::DatasetError;
pub use otlp::{kv, kv_int};
pub use read::{ScenarioData, read_otlp_file, read_scenario_dir};
pub use real::{RealFault, RealOptions, RealSuite, RealWindow, nezha_suite};
pub use replay::{IN_FLIGHT as REPLAY_IN_FLIGHT, Pace, ReplayOptions, ReplayReport, replay};
pub use retime::{
    newest_time, retime_requests, retime_scenario, shift_logs, shift_traces, whole_day_shift,
};
pub use scenario::{
    AccessLogFormat, FileFormat, GenOptions, GenSummary, ScenarioMeta, SpanStyle, TopologyKind,
    generate, scenario_names,
};
pub use sink::spawn_counting_receiver;

/// Writes converted requests to `dir/traces.pb` (or `.json`).
pub fn write_requests(
    dir: &std::path::Path,
    format: FileFormat,
    reqs: &[opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest],
) -> Result<(), DatasetError> {
    std::fs::create_dir_all(dir).map_err(|e| DatasetError::io(dir, e))?;
    scenario::write_traces(dir, format, reqs)
}

#[cfg(test)]
mod tests;
