//! Item-level validation of export requests. Items that cannot become calls are cut out
//! and reported back as `partial_success`; the rest of the request is accepted.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::spans::Val;

/// Which event times a receiver believes: timestamps are attacker-controlled, so a
/// record outside `[now − max_age, now + future_skew]` (wall clock) is refused on its
/// own, never allowed to move the watermark or age out what was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub future_skew: std::time::Duration,
    pub max_age: std::time::Duration,
}

impl Default for TimeWindow {
    /// Accepts every representable time (library use and tests; `serve` sets its own).
    fn default() -> Self {
        Self {
            future_skew: std::time::Duration::from_nanos(i64::MAX as u64),
            max_age: std::time::Duration::from_nanos(i64::MAX as u64),
        }
    }
}

impl TimeWindow {
    /// The accepted event times `[lo, hi]` at wall time `now_ns`.
    pub fn bounds(&self, now_ns: i64) -> (u64, u64) {
        let ns = |d: std::time::Duration| d.as_nanos().min(i64::MAX as u128) as i64;
        let lo = now_ns.saturating_sub(ns(self.max_age)).max(0);
        let hi = now_ns.saturating_add(ns(self.future_skew)).max(lo);
        (lo as u64, hi as u64)
    }

    fn reason(&self) -> String {
        format!(
            "rejected: timestamp more than {} ahead of or {} behind the receiver's clock",
            humantime::format_duration(self.future_skew),
            humantime::format_duration(self.max_age)
        )
    }
}

/// Current wall-clock time in Unix nanoseconds.
pub fn wall_clock_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// What validation removed from a request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    pub count: u64,
    /// Of `count`: refused for a timestamp outside the accepted window.
    pub out_of_window: u64,
    /// One sentence per reason, for `partial_success.error_message`.
    pub message: String,
}

impl Rejections {
    fn add_out_of_window(&mut self, count: u64, reason: &str) {
        self.out_of_window += count;
        self.add(count, reason);
    }

    fn add(&mut self, count: u64, reason: &str) {
        if count == 0 {
            return;
        }
        self.count += count;
        if !self.message.is_empty() {
            self.message.push_str("; ");
        }
        self.message.push_str(&format!("{count} {reason}"));
    }

    /// Spans cut from a traces request, by reason (see [`validate_traces`]).
    pub(super) fn add_spans(
        &mut self,
        nameless: u64,
        bad_ids: u64,
        out_of_window: u64,
        window: &TimeWindow,
    ) {
        self.add(
            nameless,
            "spans rejected: resource has no service.name attribute",
        );
        self.add(
            bad_ids,
            "spans rejected: trace_id must be 16 bytes and span_id 8 bytes, not all zero",
        );
        if out_of_window > 0 {
            self.add_out_of_window(out_of_window, &format!("spans {}", window.reason()));
        }
    }

    /// `partial_success` for a traces response: absent when nothing was rejected.
    pub fn into_trace_partial_success(self) -> Option<ExportTracePartialSuccess> {
        (self.count > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: self.count as i64,
            error_message: self.message,
        })
    }

    pub fn into_logs_partial_success(self) -> Option<ExportLogsPartialSuccess> {
        (self.count > 0).then_some(ExportLogsPartialSuccess {
            rejected_log_records: self.count as i64,
            error_message: self.message,
        })
    }
}

/// Whether one resource attribute names the service: `service.name`, a non-blank string.
pub(super) fn is_service_name(key: &str, value: Option<Val<'_>>) -> bool {
    key == "service.name" && names_a_service(value)
}

/// Whether a `service.name` attribute's value names a service (a non-empty string).
pub(super) fn names_a_service(value: Option<Val<'_>>) -> bool {
    matches!(value, Some(Val::Str(s)) if !s.trim().is_empty())
}

/// True when the resource names its service (`service.name`, a non-empty string).
pub fn has_service_name(resource: &Option<Resource>) -> bool {
    resource.as_ref().is_some_and(|r| {
        (r.attributes.iter()).any(|kv| is_service_name(&kv.key, kv.value.as_ref().map(Val::of)))
    })
}

pub(super) fn valid_ids(trace_id: &[u8], span_id: &[u8]) -> bool {
    trace_id.len() == 16
        && span_id.len() == 8
        && trace_id.iter().any(|b| *b != 0)
        && span_id.iter().any(|b| *b != 0)
}

/// Counts the spans in a request.
pub fn span_count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

/// Counts the log records in a request.
pub fn log_record_count(req: &ExportLogsServiceRequest) -> u64 {
    req.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len() as u64)
        .sum()
}

/// Removes spans whose resource has no `service.name` (their source is unknowable),
/// spans with invalid trace or span ids (they cannot be paired) and spans whose start
/// lies outside `window` around `now_ns`.
pub fn validate_traces(
    req: &mut ExportTraceServiceRequest,
    window: &TimeWindow,
    now_ns: i64,
) -> Rejections {
    let mut rejections = Rejections::default();
    let mut nameless = 0;
    let mut bad_ids = 0;
    let mut out_of_window = 0;
    let (lo, hi) = window.bounds(now_ns);
    req.resource_spans.retain_mut(|rs| {
        if !has_service_name(&rs.resource) {
            nameless += rs
                .scope_spans
                .iter()
                .map(|ss| ss.spans.len() as u64)
                .sum::<u64>();
            return false;
        }
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len();
            ss.spans.retain(|s| valid_ids(&s.trace_id, &s.span_id));
            bad_ids += (before - ss.spans.len()) as u64;
            let before = ss.spans.len();
            ss.spans
                .retain(|s| (lo..=hi).contains(&s.start_time_unix_nano));
            out_of_window += (before - ss.spans.len()) as u64;
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        !rs.scope_spans.is_empty()
    });
    rejections.add_spans(nameless, bad_ids, out_of_window, window);
    rejections
}

/// The time a log record happened: its own timestamp, else when it was observed.
pub fn log_record_time(l: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> u64 {
    if l.time_unix_nano != 0 {
        l.time_unix_nano
    } else {
        l.observed_time_unix_nano
    }
}

/// Log records carry their identities in attributes (access logs), so a missing
/// `service.name` is fine: every record goes on to the parsers, which count what they
/// cannot use. Records whose time lies outside `window` around `now_ns` are removed;
/// then resource blocks without records are pruned.
pub fn validate_logs(
    req: &mut ExportLogsServiceRequest,
    window: &TimeWindow,
    now_ns: i64,
) -> Rejections {
    let (lo, hi) = window.bounds(now_ns);
    let mut out_of_window = 0;
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            let before = sl.log_records.len();
            sl.log_records
                .retain(|l| (lo..=hi).contains(&log_record_time(l)));
            out_of_window += (before - sl.log_records.len()) as u64;
        }
        rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
    }
    req.resource_logs
        .retain(|rl| rl.scope_logs.iter().any(|sl| !sl.log_records.is_empty()));
    let mut rejections = Rejections::default();
    rejections.add_out_of_window(out_of_window, &format!("log records {}", window.reason()));
    rejections
}

#[cfg(test)]
pub(crate) mod fixtures {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    pub fn string_kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    pub fn span(n: u8) -> Span {
        Span {
            trace_id: vec![n.max(1); 16],
            span_id: vec![n.max(1); 8],
            name: "GET /x".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            ..Default::default()
        }
    }

    pub fn resource_spans(service: Option<&str>, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: service
                    .map(|s| vec![string_kv("service.name", s)])
                    .unwrap_or_default(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    pub fn request(resource_spans: Vec<ResourceSpans>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest { resource_spans }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn spans_of_a_nameless_resource_are_rejected_and_others_kept() {
        let mut req = request(vec![
            resource_spans(Some("cart"), vec![span(1), span(2)]),
            resource_spans(None, vec![span(3), span(4), span(5)]),
            resource_spans(Some("  "), vec![span(6)]),
        ]);
        let r = validate_traces(&mut req, &TimeWindow::default(), 0);
        assert_eq!(r.count, 4);
        assert!(r.message.contains("service.name"), "{}", r.message);
        assert_eq!(span_count(&req), 2);
    }

    #[test]
    fn spans_with_invalid_ids_are_rejected() {
        let mut short = span(1);
        short.trace_id.truncate(8);
        let mut zero = span(2);
        zero.span_id = vec![0; 8];
        let mut req = request(vec![resource_spans(
            Some("cart"),
            vec![short, zero, span(3)],
        )]);
        let r = validate_traces(&mut req, &TimeWindow::default(), 0);
        assert_eq!(r.count, 2);
        assert!(
            r.message.starts_with("2 spans rejected: trace_id"),
            "{}",
            r.message
        );
        assert_eq!(span_count(&req), 1);
    }

    #[test]
    fn spans_and_log_records_outside_the_time_window_are_rejected_one_by_one() {
        let hour = 3_600_000_000_000u64;
        let now = 1_800_000_000_000_000_000u64;
        let window = TimeWindow {
            future_skew: std::time::Duration::from_secs(300),
            max_age: std::time::Duration::from_secs(7 * 24 * 3600),
        };
        let at = |id: u8, t: u64| {
            let mut s = span(id);
            s.start_time_unix_nano = t;
            s
        };
        let mut req = request(vec![resource_spans(
            Some("cart"),
            vec![
                at(1, now),
                at(2, now + hour),      // an hour ahead
                at(3, 0),               // 1970
                at(4, u64::MAX),        // the end of time
                at(5, now - 24 * hour), // yesterday: fine
            ],
        )]);
        let r = validate_traces(&mut req, &window, now as i64);
        assert_eq!((r.count, r.out_of_window), (3, 3));
        assert!(r.message.contains("ahead of or"), "{}", r.message);
        assert_eq!(span_count(&req), 2);

        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let record = |t: u64, observed: u64| LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: observed,
            ..Default::default()
        };
        let mut logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record(now, 0), record(0, now), record(now + hour, now)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let r = validate_logs(&mut logs, &window, now as i64);
        assert_eq!((r.count, r.out_of_window), (1, 1));
        assert_eq!(log_record_count(&logs), 2);
    }

    #[test]
    fn a_valid_request_is_untouched() {
        let mut req = request(vec![resource_spans(Some("cart"), vec![span(1)])]);
        let before = req.clone();
        assert_eq!(
            validate_traces(&mut req, &TimeWindow::default(), 0),
            Rejections::default()
        );
        assert_eq!(req, before);
    }
}
