//! One batch of lines → one OTLP/HTTP protobuf request, with retries.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::{IngestLogsOptions, IngestLogsReport, MAX_RETRY_AFTER};
use crate::CollectorError;

pub(super) struct Sender {
    client: reqwest::Client,
    url: String,
    resource: Resource,
    max_retries: u32,
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

impl Sender {
    pub(super) fn new(opts: &IngestLogsOptions) -> Result<Self, CollectorError> {
        let client = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .build()
            .map_err(|e| CollectorError::Send {
                endpoint: opts.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let mut attributes = Vec::new();
        if let Some(service) = &opts.service {
            attributes.push(string_kv("service.name", service));
        }
        if let Some(namespace) = &opts.namespace {
            attributes.push(string_kv("k8s.namespace.name", namespace));
        }
        Ok(Self {
            client,
            url: opts.logs_url(),
            resource: Resource {
                attributes,
                ..Default::default()
            },
            max_retries: opts.max_retries,
        })
    }

    fn encode(&self, lines: Vec<String>) -> Vec<u8> {
        let observed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
        let log_records = lines
            .into_iter()
            .map(|line| LogRecord {
                observed_time_unix_nano: observed,
                body: Some(AnyValue {
                    value: Some(Value::StringValue(line)),
                }),
                ..Default::default()
            })
            .collect();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(self.resource.clone()),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    pub(super) async fn send(
        &self,
        lines: Vec<String>,
        report: &mut IngestLogsReport,
        cancel: &CancellationToken,
    ) -> Result<(), CollectorError> {
        let count = lines.len() as u64;
        let body = self.encode(lines);
        let fail = |reason: String| CollectorError::Send {
            endpoint: self.url.clone(),
            reason,
        };
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .body(body.clone())
                .send()
                .await;
            let (wait, reason) = match result {
                Ok(response) if response.status().is_success() => {
                    let bytes = response.bytes().await.unwrap_or_default();
                    let rejected = ExportLogsServiceResponse::decode(bytes.as_ref())
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map_or(0, |p| p.rejected_log_records.max(0) as u64);
                    report.records_sent += count;
                    report.records_rejected += rejected;
                    report.batches_sent += 1;
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status();
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    let wait = retry_after(&response);
                    let text = response.text().await.unwrap_or_default();
                    let reason = format!(
                        "HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    );
                    if !retryable {
                        return Err(fail(reason));
                    }
                    (wait, reason)
                }
                Err(e) => (None, e.to_string()),
            };
            if attempt >= self.max_retries {
                return Err(fail(format!(
                    "{reason} (gave up after {} attempts)",
                    attempt + 1
                )));
            }
            attempt += 1;
            report.retries += 1;
            let backoff = wait.unwrap_or_else(|| {
                Duration::from_millis(100 << attempt.min(8)).min(MAX_RETRY_AFTER)
            });
            tokio::select! {
                _ = cancel.cancelled() => return Err(fail(format!("{reason} (cancelled while retrying)"))),
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }
}
