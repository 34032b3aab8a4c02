//! The client behind `eastwest ingest-logs FILE... [--follow] [--to URL] [--service NAME
//! --namespace NS]`: reads Istio access-log files (text or JSON lines, told apart per
//! line), sends them as OTLP log records (body = the line) to an OTLP/HTTP `/v1/logs`
//! endpoint in protobuf, and reports what it read, skipped and sent.
//!
//! The reporting workload (whose sidecar wrote the file) is the resource: `--service`
//! becomes `service.name`, `--namespace` `k8s.namespace.name`. Without `--service` the
//! server sees an unknown reporter: outbound lines then have source `unknown`, inbound
//! lines name their destination from the mTLS SNI or `:authority` (see
//! `accesslog::AccessLogFields::into_call`). Lines are checked here first: blank lines and
//! `#` comments are skipped, lines that are not access logs are counted and not sent.
//! With `follow`, files are tailed until cancelled; truncation (the file shrank) restarts
//! from the top and rotation (the path names a new file) finishes the old file and
//! opens the new one.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::CollectorError;

mod sender;
mod tail;
#[cfg(test)]
mod tests;

use sender::Sender;
use tail::Tail;

pub const DEFAULT_INGEST_ENDPOINT: &str = "http://127.0.0.1:4318";
pub const DEFAULT_BATCH_LINES: usize = 512;
pub const MAX_BATCH_LINES: usize = 10_000;
pub const DEFAULT_MAX_RETRIES: u32 = 8;
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A server asking for a longer pause than this is waited on for this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestLogsOptions {
    pub files: Vec<PathBuf>,
    /// OTLP/HTTP base URL; `/v1/logs` is appended unless the URL already ends with it.
    pub endpoint: String,
    /// Keep tailing the files until cancelled.
    pub follow: bool,
    /// The reporting workload's service (`service.name`).
    pub service: Option<String>,
    /// The reporting workload's namespace (`k8s.namespace.name`).
    pub namespace: Option<String>,
    /// Log records per request.
    pub batch_lines: usize,
    /// Attempts after the first for a retryable failure (503, 429, 5xx, connection error).
    pub max_retries: u32,
    /// How often a followed file is checked for growth.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for IngestLogsOptions {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            endpoint: DEFAULT_INGEST_ENDPOINT.into(),
            follow: false,
            service: None,
            namespace: None,
            batch_lines: DEFAULT_BATCH_LINES,
            max_retries: DEFAULT_MAX_RETRIES,
            poll_interval: DEFAULT_POLL_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl IngestLogsOptions {
    pub fn validate(&self) -> Result<(), CollectorError> {
        let bad = |m: String| Err(CollectorError::InvalidConfig(m));
        if self.files.is_empty() {
            return bad("ingest-logs needs at least one file".into());
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return bad(format!(
                "endpoint {:?} must be an http:// or https:// URL",
                self.endpoint
            ));
        }
        if self.batch_lines == 0 || self.batch_lines > MAX_BATCH_LINES {
            return bad(format!(
                "batch_lines must be between 1 and {MAX_BATCH_LINES}"
            ));
        }
        if self.poll_interval.is_zero() || self.request_timeout.is_zero() {
            return bad("poll_interval and request_timeout must be greater than zero".into());
        }
        Ok(())
    }

    fn logs_url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/v1/logs") {
            base.to_string()
        } else {
            format!("{base}/v1/logs")
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestLogsReport {
    /// Every line read, whatever became of it.
    pub lines_read: u64,
    pub text_lines: u64,
    pub json_lines: u64,
    /// Blank lines and `#` comments.
    pub lines_skipped: u64,
    /// Lines that are not access logs in either format (not sent).
    pub lines_unparsed: u64,
    /// Lines over the length cap (not sent).
    pub lines_too_long: u64,
    pub records_sent: u64,
    /// Records the server said it rejected (`partial_success`).
    pub records_rejected: u64,
    pub batches_sent: u64,
    pub retries: u64,
    pub truncations: u64,
    pub rotations: u64,
}

/// Reads, checks and sends every line of `opts.files`; with `follow`, keeps going until
/// `cancel` fires (pending lines are sent first). Fails on an unreadable file, a
/// non-retryable response (4xx other than 429) or when retries run out.
pub async fn ingest_log_files(
    opts: IngestLogsOptions,
    cancel: CancellationToken,
) -> Result<IngestLogsReport, CollectorError> {
    opts.validate()?;
    let sender = Sender::new(&opts)?;
    let mut report = IngestLogsReport::default();
    let mut tails = Vec::with_capacity(opts.files.len());
    for path in &opts.files {
        tails.push(Tail::open(path).await?);
    }
    let mut pending = Vec::new();
    loop {
        // The last pass (no follow, or cancelled) also sends an unterminated last line.
        let last = !opts.follow || cancel.is_cancelled();
        for tail in &mut tails {
            tail.poll(&mut pending, &mut report, last, opts.follow)
                .await?;
            while pending.len() >= opts.batch_lines {
                let batch: Vec<_> = pending.drain(..opts.batch_lines).collect();
                sender.send(batch, &mut report, &cancel).await?;
            }
        }
        if !pending.is_empty() {
            sender
                .send(std::mem::take(&mut pending), &mut report, &cancel)
                .await?;
        }
        if last {
            return Ok(report);
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(opts.poll_interval) => {}
        }
    }
}
