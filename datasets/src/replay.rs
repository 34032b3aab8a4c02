//! Replay of OTLP trace files to a receiver over gRPC (`:4317`) or HTTP (`/v1/traces`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::DatasetError;
use crate::read::read_otlp_file;

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4317";
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Requests in flight at once.
pub const IN_FLIGHT: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As fast as possible.
    #[default]
    Unlimited,
    /// Event time runs this many times faster than wall time.
    Speed(f64),
    /// At most this many spans per second.
    MaxRate(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayOptions {
    /// `http://host:4317` (gRPC) or `http://host:4318/v1/traces` (HTTP protobuf): a URL
    /// whose path ends in `/v1/traces` selects HTTP.
    pub endpoint: String,
    pub pace: Pace,
    pub max_retries: u32,
    pub progress: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.into(),
            pace: Pace::Unlimited,
            max_retries: DEFAULT_MAX_RETRIES,
            progress: true,
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
    pub retries: u64,
    pub elapsed: Duration,
}

impl ReplayReport {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn span_count(r: &ExportTraceServiceRequest) -> u64 {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

fn first_time(r: &ExportTraceServiceRequest) -> Option<u64> {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.start_time_unix_nano)
        .min()
}

#[derive(Clone)]
enum Sender {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    Http(reqwest::Client),
}

/// Sends one request; `Err(Some(wait))` is retryable after `wait`.
async fn send(
    sender: &mut Sender,
    endpoint: &str,
    req: &ExportTraceServiceRequest,
) -> Result<(), (bool, Option<Duration>, String)> {
    match sender {
        Sender::Grpc(client) => client.export(req.clone()).await.map(|_| ()).map_err(|s| {
            let retry = matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::DeadlineExceeded
            );
            (retry, None, s.to_string())
        }),
        Sender::Http(client) => {
            let resp = client
                .post(endpoint)
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .map_err(|e| (true, None, e.to_string()))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
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

/// Replays every trace file in `paths` (`.pb`/`.json`, see [`crate::read_otlp_file`]).
pub async fn replay(paths: &[PathBuf], opts: ReplayOptions) -> Result<ReplayReport, DatasetError> {
    opts.validate()?;
    let mut requests = Vec::new();
    for p in paths {
        requests.extend(read_otlp_file::<ExportTraceServiceRequest>(p)?);
    }
    let fail = |detail: String| DatasetError::Replay {
        endpoint: opts.endpoint.clone(),
        detail,
    };
    let sender = if opts.endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        Sender::Http(reqwest::Client::new())
    } else {
        Sender::Grpc(
            TraceServiceClient::connect(opts.endpoint.clone())
                .await
                .map_err(|e| fail(e.to_string()))?,
        )
    };
    let total: u64 = requests.iter().map(span_count).sum();
    let bar = ProgressBar::new(total);
    if !opts.progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} spans {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut report = ReplayReport::default();
    let started = Instant::now();
    let event_origin = requests.iter().filter_map(first_time).min().unwrap_or(0);
    // Spans sent before each request, for max-rate pacing.
    let mut before = Vec::with_capacity(requests.len());
    let mut acc = 0u64;
    for r in &requests {
        before.push(acc);
        acc += span_count(r);
    }
    let (endpoint, pace, max_retries) = (opts.endpoint.clone(), opts.pace, opts.max_retries);
    let sends = requests.iter().zip(before).map(|(req, sent_before)| {
        let mut sender = sender.clone();
        let endpoint = endpoint.clone();
        async move {
            let due = match pace {
                Pace::Unlimited => None,
                Pace::Speed(x) => first_time(req).map(|t| {
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
                match send(&mut sender, &endpoint, req).await {
                    Ok(()) => return Ok((span_count(req), attempt)),
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
    let mut results = futures::stream::iter(sends).buffered(IN_FLIGHT);
    while let Some(result) = results.next().await {
        let (n, retries) = result.map_err(fail)?;
        report.requests += 1;
        report.spans += n;
        report.retries += u64::from(retries);
        bar.inc(n);
    }
    bar.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(report)
}
