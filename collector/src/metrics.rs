//! Collector counters: lock-free atomics bumped on the hot path, read at scrape time by
//! a Prometheus [`Collector`] for `/metrics` and copied into a serde snapshot for
//! `/api/v1/stats`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use eastwest_model::{MetricsSnapshot, RequestsRejected, SignalSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// Why a whole export request was refused (the client sees an error status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    Malformed,
    TooLarge,
    UnsupportedMediaType,
    QueueFull,
    ShuttingDown,
    /// Over a per-request limit (records, attributes, decoded size): not retryable.
    OverLimit,
    /// The receivers' memory budget was in use by other requests: retryable.
    MemoryBudget,
}

impl RejectReason {
    pub const ALL: [RejectReason; 7] = [
        RejectReason::Malformed,
        RejectReason::TooLarge,
        RejectReason::UnsupportedMediaType,
        RejectReason::QueueFull,
        RejectReason::ShuttingDown,
        RejectReason::OverLimit,
        RejectReason::MemoryBudget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnsupportedMediaType => "unsupported_media_type",
            RejectReason::QueueFull => "queue_full",
            RejectReason::ShuttingDown => "shutting_down",
            RejectReason::OverLimit => "over_limit",
            RejectReason::MemoryBudget => "memory_budget",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters for one signal (spans or log records).
///
/// `received = accepted + rejected + refused`: *rejected* items failed validation and
/// were reported back in `partial_success`; *refused* items came in a request refused
/// as a whole (full queue, shutdown) that the client is expected to retry.
#[derive(Debug, Default)]
pub struct SignalCounters {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub refused: AtomicU64,
}

impl SignalCounters {
    fn snapshot(&self) -> SignalSnapshot {
        SignalSnapshot {
            received: load(&self.received),
            accepted: load(&self.accepted),
            rejected: load(&self.rejected),
            refused: load(&self.refused),
        }
    }
}

/// Every counter the collector keeps. Shared as `Arc<CollectorMetrics>` between the
/// receivers (which count requests and items) and the pipeline (calls, drops, dedup).
#[derive(Debug, Default)]
pub struct CollectorMetrics {
    pub spans: SignalCounters,
    pub log_records: SignalCounters,
    requests_rejected: [AtomicU64; RejectReason::ALL.len()],
    pub calls_emitted: AtomicU64,
    /// Span halves evicted from the pairing store before their peer arrived, plus any
    /// other pairing-stage drop the normaliser reports.
    pub pairing_drops: AtomicU64,
    /// Calls suppressed because the same request was already seen (spans vs logs).
    pub dedup_hits: AtomicU64,
    /// Accepted log records that were not parseable access-log lines.
    pub log_records_unparsed: AtomicU64,
    /// Spans and log records refused because their timestamp lay outside the window
    /// around the wall clock (also counted in each signal's `rejected`).
    pub records_out_of_window: AtomicU64,
    /// Bytes of the receivers' memory budget held by requests in flight or queued.
    pub memory_reserved: std::sync::Arc<AtomicU64>,
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl CollectorMetrics {
    pub fn record_rejected_request(&self, reason: RejectReason) {
        self.requests_rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected_requests(&self, reason: RejectReason) -> u64 {
        load(&self.requests_rejected[reason.index()])
    }

    pub fn add_calls_emitted(&self, n: u64) {
        self.calls_emitted.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let spans = self.spans.snapshot();
        let logs = self.log_records.snapshot();
        let requests_rejected = RequestsRejected {
            malformed: self.rejected_requests(RejectReason::Malformed),
            too_large: self.rejected_requests(RejectReason::TooLarge),
            unsupported_media_type: self.rejected_requests(RejectReason::UnsupportedMediaType),
            queue_full: self.rejected_requests(RejectReason::QueueFull),
            shutting_down: self.rejected_requests(RejectReason::ShuttingDown),
            over_limit: self.rejected_requests(RejectReason::OverLimit),
            memory_budget: self.rejected_requests(RejectReason::MemoryBudget),
        };
        let whole_requests: u64 = RejectReason::ALL
            .iter()
            .map(|r| self.rejected_requests(*r))
            .sum();
        MetricsSnapshot {
            spans: spans.accepted,
            logs: logs.accepted,
            calls: load(&self.calls_emitted),
            rejected: spans.rejected + logs.rejected + whole_requests,
            dropped: load(&self.pairing_drops) + load(&self.log_records_unparsed),
            span_counts: spans,
            log_record_counts: logs,
            requests_rejected,
            dedup_hits: load(&self.dedup_hits),
            log_records_unparsed: load(&self.log_records_unparsed),
            out_of_window: load(&self.records_out_of_window),
        }
    }

    /// This collector's series alone in the Prometheus text format (tests, debugging);
    /// `/metrics` registers the collector with everything else.
    pub fn write_prometheus(self: &Arc<Self>, out: &mut String) {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(self)));
        // Writing to a String cannot fail, and every value here fits.
        let _ = prometheus_text::encode(out, &registry);
    }
}

/// Read at scrape time: the receivers keep bumping plain atomics, never a registry
/// lookup. Counter names are given without `_total`; the encoder appends it.
impl Collector for CollectorMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for (signal, counters) in [("spans", &self.spans), ("log_records", &self.log_records)] {
            let s = counters.snapshot();
            let name = format!("eastwest_{signal}");
            let help =
                format!("OTLP {signal} by outcome (received = accepted + rejected + refused).");
            let mut family = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
            for (outcome, value) in [
                ("received", s.received),
                ("accepted", s.accepted),
                ("rejected", s.rejected),
                ("refused", s.refused),
            ] {
                ConstCounter::new(value).encode(family.encode_family(&[("outcome", outcome)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "eastwest_requests_rejected",
            "OTLP export requests refused as a whole, by reason.",
            None,
            MetricType::Counter,
        )?;
        for reason in RejectReason::ALL {
            ConstCounter::new(self.rejected_requests(reason))
                .encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        for (name, help, counter) in [
            (
                "eastwest_calls_emitted",
                "Calls extracted from spans and access logs.",
                &self.calls_emitted,
            ),
            (
                "eastwest_pairing_drops",
                "Span halves dropped by the pairing store.",
                &self.pairing_drops,
            ),
            (
                "eastwest_dedup_hits",
                "Calls seen twice (spans and access logs) and counted once.",
                &self.dedup_hits,
            ),
            (
                "eastwest_log_records_unparsed",
                "Accepted log records that were not parseable access-log lines.",
                &self.log_records_unparsed,
            ),
            (
                "eastwest_records_out_of_window",
                "Spans and log records refused: timestamp too far ahead of or behind the wall clock.",
                &self.records_out_of_window,
            ),
        ] {
            let counter = ConstCounter::new(load(counter));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauge = ConstGauge::new(load(&self.memory_reserved));
        gauge.encode(encoder.encode_descriptor(
            "eastwest_ingest_memory_reserved_bytes",
            "Memory budget held by export requests in flight or queued.",
            None,
            gauge.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_rejections_and_reports_accepted_items() {
        let m = CollectorMetrics::default();
        m.spans.received.fetch_add(10, Ordering::Relaxed);
        m.spans.accepted.fetch_add(7, Ordering::Relaxed);
        m.spans.rejected.fetch_add(3, Ordering::Relaxed);
        m.log_records.accepted.fetch_add(2, Ordering::Relaxed);
        m.record_rejected_request(RejectReason::QueueFull);
        m.record_rejected_request(RejectReason::TooLarge);
        m.add_calls_emitted(4);
        let s = m.snapshot();
        assert_eq!((s.spans, s.logs, s.calls, s.rejected), (7, 2, 4, 5));
        assert_eq!(s.requests_rejected.queue_full, 1);
        assert_eq!(s.requests_rejected.too_large, 1);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["span_counts"]["received"], 10);
    }

    #[test]
    fn prometheus_text_has_help_type_and_labelled_values() {
        let m = Arc::new(CollectorMetrics::default());
        m.record_rejected_request(RejectReason::UnsupportedMediaType);
        m.spans.accepted.fetch_add(5, Ordering::Relaxed);
        m.memory_reserved.fetch_add(4096, Ordering::Relaxed);
        let mut out = String::new();
        m.write_prometheus(&mut out);
        assert!(out.contains("# TYPE eastwest_requests_rejected_total counter\n"));
        assert!(
            out.contains("eastwest_requests_rejected_total{reason=\"unsupported_media_type\"} 1\n")
        );
        assert!(out.contains("eastwest_spans_total{outcome=\"accepted\"} 5\n"));
        assert!(out.contains("eastwest_log_records_total{outcome=\"refused\"} 0\n"));
        assert!(out.contains("eastwest_records_out_of_window_total 0\n"));
        assert!(out.contains("# TYPE eastwest_ingest_memory_reserved_bytes gauge\n"));
        assert!(out.contains("eastwest_ingest_memory_reserved_bytes 4096\n"));
        // Every sample line belongs to a metric announced by HELP and TYPE lines.
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples.len(),
            4 + 4 + RejectReason::ALL.len() + 5 + 1,
            "{out}"
        );
        for line in samples {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("eastwest_"), "{line}");
            assert!(out.contains(&format!("# HELP {name} ")), "{line}");
            assert!(
                out.contains(&format!("# TYPE {name} counter\n"))
                    || out.contains(&format!("# TYPE {name} gauge\n")),
                "{line}"
            );
        }
    }
}
