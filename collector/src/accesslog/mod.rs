//! Envoy/Istio access logs → calls: the Istio default text format, its JSON encoding,
//! and OTLP log records from Envoy's OpenTelemetry access logger. See `fields` for who
//! is taken as source and destination.

mod fields;
mod istio_text;
mod json;
mod otlp_log;

use eastwest_model::{Call, Workload};

pub use fields::{AccessLogFields, LogCluster, parse_cluster};
pub use istio_text::{format_istio_text, parse_istio_text};
pub use json::{MAX_LINE_BYTES, fields_from_map, parse_istio_json};
pub use otlp_log::{calls_from_otlp_logs, calls_from_otlp_logs_with_origin, parse_log_record};

use crate::CollectorError;
use crate::dedup::CallOrigin;

/// The encoding of one access-log line, told apart by its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Json,
    Text,
}

pub fn detect_format(line: &str) -> LineFormat {
    if line.trim_start().starts_with('{') {
        LineFormat::Json
    } else {
        LineFormat::Text
    }
}

/// Parses one line in either format (JSON when it starts with `{`).
pub fn parse_access_log_line(line: &str) -> Result<AccessLogFields, CollectorError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(CollectorError::Malformed(format!(
            "access log line of {} bytes is too long",
            line.len()
        )));
    }
    match detect_format(line) {
        LineFormat::Json => parse_istio_json(line),
        LineFormat::Text => parse_istio_text(line),
    }
}

/// One line → call, seen from the workload whose proxy wrote it (`unknown` if unknown).
pub fn call_from_line(
    line: &str,
    reporter: &Workload,
) -> Result<(Call, CallOrigin), CollectorError> {
    parse_access_log_line(line)?.into_call(reporter, 0)
}

#[cfg(test)]
mod proptests;
