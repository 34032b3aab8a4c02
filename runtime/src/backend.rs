//! The API's view of the running pipeline (`eastwest_api::Backend`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use eastwest_api::{
    Backend, EdgeDetail, EdgeStatus, EndpointSummary, GraphEdge, GraphNode, GraphSnapshot,
};
use eastwest_baseline::{EdgeStats, LearningState};
use eastwest_collector::CollectorMetrics;
use eastwest_detector::Engine;
use eastwest_model::{Alert, format_event_time};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::pipeline::{LiveEdge, PipelineShared};

pub struct PipelineBackend {
    pub engine: Arc<Mutex<Engine>>,
    pub metrics: Arc<CollectorMetrics>,
    pub shared: Arc<PipelineShared>,
    pub storage: Arc<crate::storage::StorageMetrics>,
}

fn time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

impl PipelineBackend {
    fn watermark(&self) -> i64 {
        self.shared.watermark_ns.load(Ordering::Relaxed)
    }

    fn edge(
        &self,
        (source, destination): (&str, &str),
        stats: &EdgeStats,
        detecting_since: Option<i64>,
    ) -> GraphEdge {
        let known = stats.mtls_calls + stats.plaintext_calls;
        GraphEdge {
            source: source.to_owned(),
            destination: destination.to_owned(),
            calls: stats.calls,
            errors: stats.errors,
            first_seen: time(stats.first_seen_ns),
            last_seen: time(stats.last_seen_ns),
            mtls_ratio: (known > 0.0).then(|| stats.mtls_calls / known),
            status: match detecting_since {
                Some(since) if stats.first_seen_ns >= since => EdgeStatus::New,
                _ => EdgeStatus::Baseline,
            },
        }
    }
}

impl PipelineBackend {
    /// Endpoints of an edge the baseline never learned, from the recent calls.
    fn recent_endpoints(&self, source: &str, destination: &str) -> Vec<EndpointSummary> {
        let mut by_endpoint: std::collections::BTreeMap<(String, String), EndpointSummary> =
            Default::default();
        for c in self.shared.recent_calls.lock().iter() {
            if c.source.key() != source || c.destination.key() != destination {
                continue;
            }
            let t = time(c.event_time_ns);
            let e = by_endpoint
                .entry((c.method.clone(), c.route.clone()))
                .or_insert_with(|| EndpointSummary {
                    method: c.method.clone(),
                    route: c.route.clone(),
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
}

fn live_edge(source: &str, destination: &str, e: &LiveEdge) -> GraphEdge {
    let known = e.mtls_calls + e.plaintext_calls;
    GraphEdge {
        source: source.to_string(),
        destination: destination.to_string(),
        calls: e.calls,
        errors: e.errors,
        first_seen: time(e.first_seen_ns),
        last_seen: time(e.last_seen_ns),
        mtls_ratio: (known > 0.0).then(|| e.mtls_calls / known),
        status: EdgeStatus::New,
    }
}

fn detecting_since(state: LearningState) -> Option<i64> {
    match state {
        LearningState::Detecting { since_ns } => Some(since_ns),
        _ => None,
    }
}

impl Backend for PipelineBackend {
    fn stats(&self) -> Value {
        let mut stats = serde_json::to_value(self.metrics.snapshot()).unwrap_or_else(|_| json!({}));
        let wm = self.watermark();
        if let Value::Object(map) = &mut stats {
            map.insert(
                "late_calls".into(),
                json!(self.shared.late_calls.load(Ordering::Relaxed)),
            );
            map.insert(
                "buffered_calls".into(),
                json!(self.shared.buffered_calls.load(Ordering::Relaxed)),
            );
            map.insert(
                "watermark".into(),
                if wm > 0 {
                    json!(format_event_time(wm))
                } else {
                    Value::Null
                },
            );
        }
        stats
    }

    fn write_metrics(&self, out: &mut String) {
        self.metrics.write_prometheus(out);
        self.storage.write_prometheus(out);
        let engine = self.engine.lock();
        let index = engine.baseline().working();
        out.push_str("# HELP eastwest_baseline_edges Edges in the baseline.\n# TYPE eastwest_baseline_edges gauge\n");
        out.push_str(&format!("eastwest_baseline_edges {}\n", index.edge_count()));
        out.push_str("# HELP eastwest_baseline_endpoints Endpoints in the baseline.\n# TYPE eastwest_baseline_endpoints gauge\n");
        out.push_str(&format!(
            "eastwest_baseline_endpoints {}\n",
            index.endpoint_count()
        ));
        out.push_str("# HELP eastwest_late_calls_total Calls that reached the pipeline after event time had passed them (judged per call, counted in the open window).\n# TYPE eastwest_late_calls_total counter\n");
        out.push_str(&format!(
            "eastwest_late_calls_total {}\n",
            self.shared.late_calls.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP eastwest_buffered_calls Calls waiting for the watermark before detection.\n# TYPE eastwest_buffered_calls gauge\n");
        out.push_str(&format!(
            "eastwest_buffered_calls {}\n",
            self.shared.buffered_calls.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP eastwest_watermark_seconds Event-time watermark.\n# TYPE eastwest_watermark_seconds gauge\n");
        out.push_str(&format!(
            "eastwest_watermark_seconds {}\n",
            self.watermark() as f64 / 1e9
        ));
    }

    fn graph(&self) -> GraphSnapshot {
        let engine = self.engine.lock();
        let since = detecting_since(engine.baseline().state());
        let index = engine.baseline().working();
        let mut edges: Vec<GraphEdge> = index
            .edges()
            .map(|(k, s)| {
                let names = (index.name(k.source), index.name(k.destination));
                self.edge(names, s, since)
            })
            .collect();
        drop(engine);
        // Edges the baseline did not learn (alerted calls are never learned) still happened.
        let learned: HashSet<(&str, &str)> = edges
            .iter()
            .map(|e| (e.source.as_str(), e.destination.as_str()))
            .collect();
        let unlearned: Vec<GraphEdge> = self
            .shared
            .live_edges
            .lock()
            .iter()
            .filter(|((s, d), _)| !learned.contains(&(s.as_str(), d.as_str())))
            .map(|((s, d), e)| live_edge(s, d, e))
            .collect();
        edges.extend(unlearned);
        let mut keys: Vec<&str> = edges
            .iter()
            .flat_map(|e| [e.source.as_str(), e.destination.as_str()])
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let workloads = self.shared.workloads.lock();
        let nodes = keys
            .into_iter()
            .map(|k| {
                let (service, namespace) = workloads
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| (k.to_string(), None));
                GraphNode {
                    id: k.to_string(),
                    service,
                    namespace,
                }
            })
            .collect();
        GraphSnapshot { nodes, edges }
    }

    fn edge_detail(&self, source: &str, destination: &str) -> Option<EdgeDetail> {
        let engine = self.engine.lock();
        let since = detecting_since(engine.baseline().state());
        let index = engine.baseline().working();
        let key = index.edge_key(source, destination);
        let (edge, mut endpoints) = match key.and_then(|k| Some((k, index.edge(k)?))) {
            Some((key, stats)) => {
                let endpoints: Vec<EndpointSummary> = index
                    .endpoints()
                    .filter(|(k, _)| k.edge == key)
                    .map(|(k, s)| EndpointSummary {
                        method: index.name(k.method).to_owned(),
                        route: index.name(k.route).to_owned(),
                        calls: s.calls,
                        errors: s.errors,
                        first_seen: time(s.first_seen_ns),
                        last_seen: time(s.last_seen_ns),
                    })
                    .collect();
                (self.edge((source, destination), stats, since), endpoints)
            }
            None => {
                drop(engine);
                let live = self
                    .shared
                    .live_edges
                    .lock()
                    .get(&(source.to_string(), destination.to_string()))
                    .cloned()?;
                let edge = live_edge(source, destination, &live);
                (edge, self.recent_endpoints(source, destination))
            }
        };
        endpoints.sort_by(|a, b| b.calls.total_cmp(&a.calls));
        let trace_ids = self
            .shared
            .edge_trace_ids
            .lock()
            .get(&(source.to_string(), destination.to_string()))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        Some(EdgeDetail {
            edge,
            endpoints,
            trace_ids,
            alerts: Vec::new(),
        })
    }

    fn baseline_status(&self) -> Value {
        let engine = self.engine.lock();
        serde_json::to_value(engine.baseline().status(self.watermark())).unwrap_or(Value::Null)
    }

    fn end_learning(&self) -> Value {
        let wm = self.watermark();
        let mut engine = self.engine.lock();
        engine.end_learning(wm);
        serde_json::to_value(engine.baseline().status(wm)).unwrap_or(Value::Null)
    }

    fn accept(&self, alert: &Alert) {
        self.engine.lock().baseline_mut().accept_alert(alert);
    }

    fn recent_calls(&self, limit: usize) -> Value {
        let recent = self.shared.recent_calls.lock();
        let skip = recent.len().saturating_sub(limit);
        json!({ "calls": recent.iter().skip(skip).collect::<Vec<_>>() })
    }

    fn ready(&self) -> bool {
        self.shared.ready()
    }
}
