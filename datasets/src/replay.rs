//! Replay of OTLP trace and log files to a receiver over gRPC (`:4317`) or HTTP
//! (`/v1/traces`, `/v1/logs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::DatasetError;
use crate::read::read_otlp_file;
use eastwest_collector::otlp::{log_record_count, span_count};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4317";
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Requests in flight at once by default: one, so the receiver gets them in file order.
/// More streams reorder requests, and a generated request covers minutes of event time:
/// beyond the receiver's allowed lateness, that changes what it detects.
pub const IN_FLIGHT: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As fast as possible.
    #[default]
    Unlimited,
    /// Event time runs this many times faster than wall time.
    Speed(f64),
    /// At most this many spans (and log records) per second.
    MaxRate(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayOptions {
    /// `http://host:4317` (gRPC) or `http://host:4318/v1/traces` (HTTP protobuf): a URL
    /// whose path ends in `/v1/traces` selects HTTP (logs then go to `/v1/logs`).
    pub endpoint: String,
    pub pace: Pace,
    pub max_retries: u32,
    pub progress: bool,
    /// Move the telemetry by whole days so its newest record lies within the last day: a
    /// receiver refuses records far from its wall clock.
    pub retime: bool,
    /// Requests in flight at once (the order of starts is kept).
    pub in_flight: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.into(),
            pace: Pace::Unlimited,
            max_retries: DEFAULT_MAX_RETRIES,
            progress: true,
            retime: true,
            in_flight: IN_FLIGHT,
        }
    }
}

impl ReplayOptions {
    pub fn validate(&self) -> Result<(), DatasetError> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(DatasetError::InvalidOptions(format!(
                "endpoint must be an http(s) URL: {}",
                self.endpoint
            )));
        }
        if self.in_flight == 0 {
            return Err(DatasetError::InvalidOptions(
                "in_flight must be at least 1".into(),
            ));
        }
        match self.pace {
            Pace::Speed(x) | Pace::MaxRate(x) if !(x > 0.0 && x.is_finite()) => {
                Err(DatasetError::InvalidOptions("pace must be > 0".into()))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReplayReport {
    pub requests: u64,
    pub spans: u64,
    pub log_records: u64,
    /// Spans and log records the receiver refused item by item (`partial_success`).
    pub rejected: u64,
    /// Whole days the telemetry was moved by (`retime`).
    pub shifted_days: i64,
    pub retries: u64,
    pub elapsed: Duration,
}

impl ReplayReport {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One export request read from a file: `logs*` files hold log records (Envoy access
/// logs as OTLP), every other file spans.
#[derive(Debug, Clone)]
enum Export {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Export {
    /// Spans or log records in the request.
    fn items(&self) -> u64 {
        match self {
            Export::Traces(r) => span_count(r),
            Export::Logs(r) => log_record_count(r),
        }
    }

    fn first_time(&self) -> Option<u64> {
        match self {
            Export::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| s.start_time_unix_nano)
                .min(),
            Export::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .flat_map(|sl| &sl.log_records)
                .map(|l| l.time_unix_nano)
                .min(),
        }
    }
}

fn is_logs_file(path: &std::path::Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("logs"))
}

/// Traces in file order with log requests merged in by first event time, so a paced
/// replay sends an access-log line around the time of its spans.
fn merge_by_time(traces: Vec<Export>, logs: Vec<Export>) -> Vec<Export> {
    let mut out = Vec::with_capacity(traces.len() + logs.len());
    let mut logs = logs.into_iter().peekable();
    for t in traces {
        let t_time = t.first_time().unwrap_or(u64::MAX);
        while let Some(l) = logs.next_if(|l| l.first_time().unwrap_or(u64::MAX) < t_time) {
            out.push(l);
        }
        out.push(t);
    }
    out.extend(logs);
    out
}

/// (traces URL, logs URL) when `endpoint` names the OTLP/HTTP traces path; `None` for
/// gRPC.
fn http_urls(endpoint: &str) -> Option<(String, String)> {
    let endpoint = endpoint.trim_end_matches('/');
    let base = endpoint.strip_suffix("/v1/traces")?;
    Some((endpoint.to_string(), format!("{base}/v1/logs")))
}

#[derive(Clone)]
struct GrpcClients {
    traces: TraceServiceClient<tonic::transport::Channel>,
    logs: LogsServiceClient<tonic::transport::Channel>,
}

#[derive(Clone)]
enum Sender {
    Grpc(Box<GrpcClients>),
    Http {
        client: reqwest::Client,
        traces_url: String,
        logs_url: String,
    },
}

fn retryable_grpc(s: tonic::Status) -> (bool, Option<Duration>, String) {
    let retry = matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::DeadlineExceeded
    );
    (retry, None, s.to_string())
}

/// Sends one request; `Ok` carries the items refused one by one (`partial_success`),
/// `Err((true, wait, _))` is retryable (after `wait` when given).
async fn send(sender: &mut Sender, req: &Export) -> Result<u64, (bool, Option<Duration>, String)> {
    match sender {
        Sender::Grpc(clients) => match req {
            Export::Traces(r) => clients.traces.export(r.clone()).await.map(|resp| {
                let p = resp.into_inner().partial_success;
                p.map_or(0, |p| p.rejected_spans.max(0) as u64)
            }),
            Export::Logs(r) => clients.logs.export(r.clone()).await.map(|resp| {
                let p = resp.into_inner().partial_success;
                p.map_or(0, |p| p.rejected_log_records.max(0) as u64)
            }),
        }
        .map_err(retryable_grpc),
        Sender::Http {
            client,
            traces_url,
            logs_url,
        } => {
            let (url, body) = match req {
                Export::Traces(r) => (&*traces_url, r.encode_to_vec()),
                Export::Logs(r) => (&*logs_url, r.encode_to_vec()),
            };
            let resp = client
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .map_err(|e| (true, None, e.to_string()))?;
            let status = resp.status();
            if status.is_success() {
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| (true, None, e.to_string()))?;
                return Ok(match req {
                    Export::Traces(_) => ExportTraceServiceResponse::decode(body)
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map_or(0, |p| p.rejected_spans.max(0) as u64),
                    Export::Logs(_) => ExportLogsServiceResponse::decode(body)
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map_or(0, |p| p.rejected_log_records.max(0) as u64),
                });
            }
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            Err((
                matches!(status.as_u16(), 429 | 502 | 503 | 504),
                after,
                format!("http {status}"),
            ))
        }
    }
}

/// Replays every OTLP file in `paths` (`.pb`/`.json`, see [`crate::read_otlp_file`]):
/// files named `logs*` as log records, the others as spans.
pub async fn replay(paths: &[PathBuf], opts: ReplayOptions) -> Result<ReplayReport, DatasetError> {
    opts.validate()?;
    let (mut traces, mut logs) = (Vec::new(), Vec::new());
    for p in paths {
        if is_logs_file(p) {
            logs.extend(read_otlp_file::<ExportLogsServiceRequest>(p)?);
        } else {
            traces.extend(read_otlp_file::<ExportTraceServiceRequest>(p)?);
        }
    }
    let mut shifted_days = 0;
    if opts.retime {
        let now = eastwest_collector::wall_clock_ns();
        let by = crate::retime::retime_requests(&mut traces, &mut logs, now);
        shifted_days = by / 86_400_000_000_000;
    }
    let requests = merge_by_time(
        traces.into_iter().map(Export::Traces).collect(),
        logs.into_iter().map(Export::Logs).collect(),
    );
    let fail = |detail: String| DatasetError::Replay {
        endpoint: opts.endpoint.clone(),
        detail,
    };
    let sender = if let Some((traces_url, logs_url)) = http_urls(&opts.endpoint) {
        Sender::Http {
            client: reqwest::Client::new(),
            traces_url,
            logs_url,
        }
    } else {
        let channel = tonic::transport::Endpoint::from_shared(opts.endpoint.clone())
            .map_err(|e| fail(e.to_string()))?
            .connect()
            .await
            .map_err(|e| fail(e.to_string()))?;
        Sender::Grpc(Box::new(GrpcClients {
            traces: TraceServiceClient::new(channel.clone()),
            logs: LogsServiceClient::new(channel),
        }))
    };
    let total: u64 = requests.iter().map(Export::items).sum();
    let bar = ProgressBar::new(total);
    if !opts.progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} spans+logs {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut report = ReplayReport::default();
    let started = Instant::now();
    let event_origin = requests
        .iter()
        .filter_map(Export::first_time)
        .min()
        .unwrap_or(0);
    // Spans sent before each request, for max-rate pacing.
    let mut before = Vec::with_capacity(requests.len());
    let mut acc = 0u64;
    for r in &requests {
        before.push(acc);
        acc += r.items();
    }
    let (pace, max_retries) = (opts.pace, opts.max_retries);
    let sends = requests.iter().zip(before).map(|(req, sent_before)| {
        let mut sender = sender.clone();
        async move {
            let due = match pace {
                Pace::Unlimited => None,
                Pace::Speed(x) => req.first_time().map(|t| {
                    Duration::from_secs_f64(t.saturating_sub(event_origin) as f64 / 1e9 / x)
                }),
                Pace::MaxRate(r) => Some(Duration::from_secs_f64(sent_before as f64 / r)),
            };
            if let Some(due) = due
                && let Some(wait) = due.checked_sub(started.elapsed())
            {
                tokio::time::sleep(wait).await;
            }
            let mut attempt = 0u32;
            loop {
                match send(&mut sender, req).await {
                    Ok(rejected) => return Ok((req, attempt, rejected)),
                    Err((true, after, _)) if attempt < max_retries => {
                        attempt += 1;
                        tokio::time::sleep(
                            after.unwrap_or(Duration::from_millis(100 << attempt.min(6))),
                        )
                        .await;
                    }
                    Err((_, _, detail)) => return Err(detail),
                }
            }
        }
    });
    // A few requests in flight hide the round trip; order of starts is preserved.
    let mut results = futures::stream::iter(sends).buffered(opts.in_flight);
    report.shifted_days = shifted_days;
    while let Some(result) = results.next().await {
        let (req, retries, rejected) = result.map_err(fail)?;
        let n = req.items();
        report.requests += 1;
        report.rejected += rejected;
        match req {
            Export::Traces(_) => report.spans += n,
            Export::Logs(_) => report.log_records += n,
        }
        report.retries += u64::from(retries);
        bar.inc(n);
    }
    bar.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoints_send_logs_beside_traces_and_others_are_grpc() {
        assert_eq!(
            http_urls("http://h:4318/v1/traces/"),
            Some((
                "http://h:4318/v1/traces".to_string(),
                "http://h:4318/v1/logs".to_string()
            ))
        );
        assert_eq!(http_urls("http://h:4317"), None);
    }

    #[test]
    fn log_requests_merge_in_by_event_time_and_traces_keep_their_order() {
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let trace = |t: u64| {
            Export::Traces(ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span {
                            start_time_unix_nano: t,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            })
        };
        let log = |t: u64| {
            Export::Logs(ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records: vec![LogRecord {
                            time_unix_nano: t,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            })
        };
        let merged = merge_by_time(vec![trace(10), trace(5), trace(30)], vec![log(1), log(20)]);
        let order: Vec<(bool, u64)> = merged
            .iter()
            .map(|e| (matches!(e, Export::Logs(_)), e.first_time().unwrap()))
            .collect();
        assert_eq!(
            order,
            vec![(true, 1), (false, 10), (false, 5), (true, 20), (false, 30)]
        );
    }
}
