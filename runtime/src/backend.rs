//! The API's view of the running pipeline (`eastwest_api::Backend`): reads the views the
//! pipeline publishes, and turns the operator's actions into commands for it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eastwest_api::{
    AlertStore, Backend, EdgeDetail, EdgeStatus, EndpointSummary, GraphEdge, GraphNode,
    GraphSnapshot, Stats,
};
use eastwest_baseline::EdgeStats;
use eastwest_collector::CollectorMetrics;
use eastwest_model::{Alert, BaselineStatus, Call, CompactString, format_event_time};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::published::{Command, LiveEdge, LiveView, Published, protocols_of};
use crate::storage::StorageMetrics;

/// How long `POST /api/v1/baseline/detect` waits for the pipeline to apply it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PipelineBackend {
    pub published: Arc<Published>,
    pub metrics: Arc<CollectorMetrics>,
    pub storage: Arc<StorageMetrics>,
    /// Whether its writes fail is part of readiness.
    pub store: AlertStore,
}

fn time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn mtls_ratio(mtls: f64, plaintext: f64) -> Option<f64> {
    let known = mtls + plaintext;
    (known > 0.0).then(|| mtls / known)
}

fn learned_edge(
    (source, destination): (&str, &str),
    stats: &EdgeStats,
    detecting_since: Option<i64>,
) -> GraphEdge {
    GraphEdge {
        source: source.to_owned(),
        destination: destination.to_owned(),
        calls: stats.calls,
        errors: stats.errors,
        first_seen: time(stats.first_seen_ns),
        last_seen: time(stats.last_seen_ns),
        mtls_ratio: mtls_ratio(stats.mtls_calls, stats.plaintext_calls),
        // The baseline keeps no protocols: filled from the live edge (`with_protocols`).
        protocols: Vec::new(),
        status: match detecting_since {
            Some(since) if stats.first_seen_ns >= since => EdgeStatus::New,
            _ => EdgeStatus::Baseline,
        },
    }
}

fn live_edge(source: &str, destination: &str, e: &LiveEdge) -> GraphEdge {
    GraphEdge {
        source: source.to_string(),
        destination: destination.to_string(),
        calls: e.calls,
        errors: e.errors,
        first_seen: time(e.first_seen_ns),
        last_seen: time(e.last_seen_ns),
        mtls_ratio: mtls_ratio(e.mtls_calls, e.plaintext_calls),
        protocols: protocols_of(e.protocols),
        status: EdgeStatus::New,
    }
}

/// A learned edge's protocols, from what live traffic showed on it.
fn with_protocols(mut edge: GraphEdge, live: &LiveView) -> GraphEdge {
    if edge.protocols.is_empty()
        && let Some(e) = live.edges.get(&(
            edge.source.as_str().into(),
            edge.destination.as_str().into(),
        ))
    {
        edge.protocols = protocols_of(e.protocols);
    }
    edge
}

/// Endpoints of an edge the baseline never learned, from the recent calls.
fn recent_endpoints(live: &LiveView, source: &str, destination: &str) -> Vec<EndpointSummary> {
    let mut by_endpoint: std::collections::BTreeMap<(String, String), EndpointSummary> =
        Default::default();
    for c in live.recent_calls.iter() {
        if c.source.key() != source || c.destination.key() != destination {
            continue;
        }
        let t = time(c.event_time_ns);
        let e = by_endpoint
            .entry((c.method.to_string(), c.route.to_string()))
            .or_insert_with(|| EndpointSummary {
                method: c.method.to_string(),
                route: c.route.to_string(),
                calls: 0.0,
                errors: 0.0,
                first_seen: t,
                last_seen: t,
            });
        e.calls += 1.0;
        e.errors += if c.error { 1.0 } else { 0.0 };
        e.first_seen = e.first_seen.min(t);
        e.last_seen = e.last_seen.max(t);
    }
    by_endpoint.into_values().collect()
}

/// The pipeline's published views and the alert store's health, read at scrape time.
struct PipelineSeries {
    published: Arc<Published>,
    store: AlertStore,
}

impl std::fmt::Debug for PipelineSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSeries").finish_non_exhaustive()
    }
}

impl Collector for PipelineSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let baseline = self.published.baseline.load();
        let live = self.published.live.load();
        let gauges: [(&str, &str, u64); 4] = [
            (
                "eastwest_alert_store_write_failing",
                "1 while the alert store cannot commit (alerts wait in the spool; the process is not ready).",
                u64::from(self.store.writes_failing()),
            ),
            (
                "eastwest_baseline_edges",
                "Edges in the baseline.",
                baseline.edges.len() as u64,
            ),
            (
                "eastwest_baseline_endpoints",
                "Endpoints in the baseline.",
                baseline.endpoint_count as u64,
            ),
            (
                "eastwest_buffered_calls",
                "Calls waiting for the watermark before detection.",
                live.buffered_calls,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let watermark = ConstGauge::new(live.watermark_ns as f64 / 1e9);
        watermark.encode(encoder.encode_descriptor(
            "eastwest_watermark_seconds",
            "Event-time watermark.",
            None,
            watermark.metric_type(),
        )?)?;
        // The encoder appends `_total` to counter names.
        let late = ConstCounter::new(live.late_calls);
        late.encode(encoder.encode_descriptor(
            "eastwest_late_calls",
            "Calls that reached the pipeline after event time had passed them (judged per call, counted in the open window).",
            None,
            late.metric_type(),
        )?)
    }
}

impl Backend for PipelineBackend {
    fn stats(&self) -> Stats {
        let live = self.published.live.load();
        Stats {
            ingest: self.metrics.snapshot(),
            late_calls: live.late_calls,
            buffered_calls: live.buffered_calls,
            watermark: (live.watermark_ns > 0).then(|| format_event_time(live.watermark_ns)),
        }
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.metrics.clone()));
        registry.register_collector(Box::new(self.storage.clone()));
        registry.register_collector(Box::new(PipelineSeries {
            published: self.published.clone(),
            store: self.store.clone(),
        }));
    }

    fn graph(&self) -> GraphSnapshot {
        let baseline = self.published.baseline.load();
        let live = self.published.live.load();
        let mut edges: Vec<GraphEdge> = baseline
            .edges
            .iter()
            .map(|((s, d), stats)| learned_edge((s, d), stats, baseline.detecting_since))
            .map(|e| with_protocols(e, &live))
            .collect();
        // Edges the baseline did not learn (alerted calls are never learned) still happened.
        let learned: HashSet<(&str, &str)> = baseline
            .edges
            .iter()
            .map(|((s, d), _)| (s.as_str(), d.as_str()))
            .collect();
        edges.extend(
            live.edges
                .iter()
                .filter(|((s, d), _)| !learned.contains(&(s.as_str(), d.as_str())))
                .map(|((s, d), e)| live_edge(s, d, e)),
        );
        let mut keys: Vec<&str> = edges
            .iter()
            .flat_map(|e| [e.source.as_str(), e.destination.as_str()])
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let nodes = keys
            .into_iter()
            .map(|k| {
                let (service, namespace) = live
                    .workloads
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| (CompactString::from(k), None));
                GraphNode {
                    id: k.to_string(),
                    service: service.into(),
                    namespace: namespace.map(Into::into),
                }
            })
            .collect();
        GraphSnapshot { nodes, edges }
    }

    fn edge_detail(&self, source: &str, destination: &str) -> Option<EdgeDetail> {
        let baseline = self.published.baseline.load();
        let live = self.published.live.load();
        let key = (source.into(), destination.into());
        let (edge, mut endpoints) = match baseline.edges.get(&key) {
            Some(stats) => (
                with_protocols(
                    learned_edge((source, destination), stats, baseline.detecting_since),
                    &live,
                ),
                baseline.endpoints.get(&key).cloned().unwrap_or_default(),
            ),
            None => {
                let e = live.edges.get(&key)?;
                (
                    live_edge(source, destination, e),
                    recent_endpoints(&live, source, destination),
                )
            }
        };
        endpoints.sort_by(|a, b| b.calls.total_cmp(&a.calls));
        let trace_ids = live
            .edges
            .get(&key)
            .map(|e| e.trace_ids.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        Some(EdgeDetail {
            edge,
            endpoints,
            trace_ids,
            alerts: Vec::new(),
        })
    }

    fn baseline_status(&self) -> BaselineStatus {
        let baseline = self.published.baseline.load();
        baseline.status.clone().unwrap_or_default()
    }

    fn end_learning(&self) -> BaselineStatus {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        if self
            .published
            .commands
            .blocking_send(Command::EndLearning(reply))
            .is_ok()
            && let Ok(status) = answer.recv_timeout(COMMAND_TIMEOUT)
        {
            return status;
        }
        tracing::warn!("the pipeline did not apply \"end learning\" in time");
        self.baseline_status()
    }

    fn accept(&self, alert: &Alert) {
        let command = Command::Accept(Box::new(alert.clone()));
        if self.published.commands.blocking_send(command).is_err() {
            tracing::warn!(alert = %alert.id, "the pipeline is gone; the accepted call is not learned");
        }
    }

    fn recent_calls(&self, limit: usize) -> Vec<Call> {
        let live = self.published.live.load();
        let skip = live.recent_calls.len().saturating_sub(limit);
        live.recent_calls
            .iter()
            .skip(skip)
            .map(|c| Call::clone(c))
            .collect()
    }

    /// Every stage runs, and the alert store and history take writes: a process that
    /// keeps alerts only in memory or drops the history is not ready.
    fn ready(&self) -> bool {
        self.published.ready() && !self.store.writes_failing() && !self.storage.history_failing()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use prometheus_client::encoding::prometheus_text;

    use super::*;
    use crate::published::LiveView;

    #[test]
    fn every_runtime_series_keeps_its_name_type_and_help() {
        let dir = tempfile::tempdir().unwrap();
        let (published, _commands) = Published::new();
        published.live.store(Arc::new(LiveView {
            watermark_ns: 1_700_000_000_500_000_000,
            late_calls: 3,
            buffered_calls: 7,
            ..Default::default()
        }));
        let backend = PipelineBackend {
            published,
            metrics: Arc::new(CollectorMetrics::default()),
            storage: Arc::new(StorageMetrics::default()),
            store: AlertStore::open(dir.path()).unwrap(),
        };
        backend
            .metrics
            .spans
            .accepted
            .fetch_add(5, Ordering::Relaxed);
        backend
            .storage
            .snapshots_written
            .fetch_add(2, Ordering::Relaxed);
        let mut registry = Registry::default();
        backend.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();

        let counters = [
            "eastwest_spans_total",
            "eastwest_log_records_total",
            "eastwest_requests_rejected_total",
            "eastwest_calls_emitted_total",
            "eastwest_pairing_drops_total",
            "eastwest_dedup_hits_total",
            "eastwest_log_records_unparsed_total",
            "eastwest_records_out_of_window_total",
            "eastwest_history_rows_written_total",
            "eastwest_history_rows_dropped_total",
            "eastwest_history_write_errors_total",
            "eastwest_baseline_snapshots_written_total",
            "eastwest_baseline_snapshot_errors_total",
            "eastwest_late_calls_total",
        ];
        let gauges = [
            "eastwest_ingest_memory_reserved_bytes",
            "eastwest_history_write_failing",
            "eastwest_alert_store_write_failing",
            "eastwest_baseline_edges",
            "eastwest_baseline_endpoints",
            "eastwest_buffered_calls",
            "eastwest_watermark_seconds",
        ];
        let types = counters.map(|n| (n, "counter"));
        for (name, kind) in types.iter().chain(&gauges.map(|n| (n, "gauge"))) {
            assert!(
                text.contains(&format!("\n# TYPE {name} {kind}\n")),
                "{name}\n{text}"
            );
            let help = format!("# HELP {name} ");
            let help_line = text.lines().find(|l| l.starts_with(&help));
            assert!(
                help_line.is_some_and(|l| l.len() > help.len() + 5),
                "{name}"
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{name} "))
                        || l.starts_with(&format!("{name}{{"))),
                "no sample of {name}"
            );
        }
        let announced = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(announced, counters.len() + gauges.len(), "{text}");
        for sample in [
            "eastwest_spans_total{outcome=\"accepted\"} 5\n",
            "eastwest_requests_rejected_total{reason=\"over_limit\"} 0\n",
            "eastwest_baseline_snapshots_written_total 2\n",
            "eastwest_late_calls_total 3\n",
            "eastwest_buffered_calls 7\n",
            "eastwest_alert_store_write_failing 0\n",
            "eastwest_watermark_seconds 1700000000.5\n",
        ] {
            assert!(text.contains(sample), "{sample}{text}");
        }
    }
}
