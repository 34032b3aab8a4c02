//! The API's own counters, and the one Prometheus [`Registry`] `/metrics` encodes: the
//! backend's collectors (collector, history, pipeline), the service graph and the API's.
//!
//! Counters bumped per call, alert or request are plain atomics that a [`Collector`]
//! reads at scrape time, so no hot path takes a lock; label sets that come from
//! requests (method, route, status; webhook destination) are typed [`Family`]s. Names,
//! types, HELP lines and label escaping are `prometheus-client`'s.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use eastwest_model::{AlertKind, Severity};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::Backend;
use crate::graph::{GraphEdge, GraphSnapshot};

/// What [`encode`] writes: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Webhook delivery outcomes counted per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryOutcome {
    Delivered,
    Failed,
    DeadLettered,
    RateLimited,
}

impl DeliveryOutcome {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::DeadLettered => "dead_lettered",
            DeliveryOutcome::RateLimited => "rate_limited",
        }
    }
}

impl EncodeLabelValue for DeliveryOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Why the HTTP edge refused a request before it reached a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `Host` names no address or name this server answers to (DNS rebinding).
    Host,
    /// A state-changing request whose `Origin` is another site.
    Origin,
    /// A state-changing request without `X-Eastwest-Request` or `Authorization`.
    MissingHeader,
    /// No or a wrong bearer token.
    Token,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::Host,
        Refusal::Origin,
        Refusal::MissingHeader,
        Refusal::Token,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Refusal::Host => "host",
            Refusal::Origin => "origin",
            Refusal::MissingHeader => "missing_header",
            Refusal::Token => "token",
        }
    }
}

/// `eastwest_http_requests_total` labels; routes are templates, so the set is bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

/// `eastwest_webhook_deliveries_total` labels; destinations come from config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    destination: String,
    outcome: DeliveryOutcome,
}

#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// New alerts by [kind][severity].
    alerts_new: [[AtomicU64; Severity::ALL.len()]; AlertKind::ALL.len()],
    pub alert_updates: AtomicU64,
    pub incidents_written: AtomicU64,
    pub sink_batches: AtomicU64,
    /// Updates folded into a not-yet-written version of the same alert.
    pub sink_coalesced: AtomicU64,
    /// Times `publish` had to wait because the writer was too far behind.
    pub sink_blocked: AtomicU64,
    pub sink_pending: AtomicI64,
    pub store_write_errors: AtomicU64,
    /// Alerts held in the spool while the store cannot write.
    pub spool_alerts: AtomicI64,
    /// Pending alerts in neither the store nor the spool (lost if the process ends).
    pub alerts_at_risk: AtomicI64,
    pub spool_write_errors: AtomicU64,
    pub sse_clients: AtomicI64,
    pub sse_resyncs: AtomicU64,
    http_requests: Family<HttpLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    /// Requests refused at the edge, by [`Refusal`] in `Refusal::ALL` order.
    refused: [AtomicU64; Refusal::ALL.len()],
}

fn kind_index(kind: AlertKind) -> usize {
    AlertKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn severity_index(s: Severity) -> usize {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl ApiMetrics {
    pub fn count_new_alert(&self, kind: AlertKind, severity: Severity) {
        self.alerts_new[kind_index(kind)][severity_index(severity)].fetch_add(1, Ordering::Relaxed);
    }

    /// New alerts stored since start, all kinds and severities.
    pub fn count_total_new(&self) -> u64 {
        self.alerts_new.iter().flatten().map(load).sum()
    }

    pub fn count_http(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
    }

    pub(crate) fn count_refusal(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_delivery(&self, destination: &str, outcome: DeliveryOutcome) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                destination: destination.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn delivery_count(&self, destination: &str, outcome: DeliveryOutcome) -> u64 {
        self.deliveries
            .get(&DeliveryLabels {
                destination: destination.to_string(),
                outcome,
            })
            .map_or(0, |c| c.get())
    }

    /// Adds the API's series. `outbox` is (destination, status, rows) from the store.
    pub fn register(self: &Arc<Self>, registry: &mut Registry, outbox: Vec<(String, String, u64)>) {
        // Registered metrics get a "." appended to their help.
        registry.register(
            "eastwest_http_requests",
            "HTTP requests by method, route and status",
            self.http_requests.clone(),
        );
        registry.register(
            "eastwest_webhook_deliveries",
            "Webhook delivery attempts by destination and outcome",
            self.deliveries.clone(),
        );
        registry.register_collector(Box::new(ApiCollector {
            metrics: Arc::clone(self),
            outbox,
        }));
    }
}

/// Everything `/metrics` serves, in one registry: the long-lived handles (atomics,
/// families) plus two snapshots taken now, the service graph (at most `max_edges`
/// edges) and the webhook outbox counts.
pub fn registry(
    backend: &dyn Backend,
    api: &Arc<ApiMetrics>,
    outbox: Vec<(String, String, u64)>,
    max_edges: usize,
) -> Registry {
    let mut registry = Registry::default();
    backend.register_metrics(&mut registry);
    registry.register_collector(Box::new(ServiceGraph::new(backend.graph(), max_edges)));
    api.register(&mut registry, outbox);
    registry
}

/// `registry` in the Prometheus text format ([`CONTENT_TYPE`]).
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::new();
    prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// A counter without labels. `name` lacks `_total`: the encoder appends it.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A gauge without labels.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The API's atomics and the outbox counts, read at scrape time.
#[derive(Debug)]
struct ApiCollector {
    metrics: Arc<ApiMetrics>,
    outbox: Vec<(String, String, u64)>,
}

impl Collector for ApiCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let m = &self.metrics;
        let mut family = encoder.encode_descriptor(
            "eastwest_alerts",
            "New alerts stored, by kind and severity.",
            None,
            MetricType::Counter,
        )?;
        for kind in AlertKind::ALL {
            for sev in Severity::ALL {
                let n = load(&m.alerts_new[kind_index(kind)][severity_index(sev)]);
                let labels = [("kind", kind.as_str()), ("severity", sev.as_str())];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            (
                "eastwest_alert_updates",
                "Updates of already stored alerts.",
                &m.alert_updates,
            ),
            (
                "eastwest_incidents_written",
                "Incident versions stored.",
                &m.incidents_written,
            ),
            (
                "eastwest_alert_sink_batches",
                "Store transactions committed by the alert sink.",
                &m.sink_batches,
            ),
            (
                "eastwest_alert_sink_coalesced",
                "Alert updates folded into a pending write of the same alert.",
                &m.sink_coalesced,
            ),
            (
                "eastwest_alert_sink_blocked",
                "Publishes that waited for the store writer (back-pressure).",
                &m.sink_blocked,
            ),
            (
                "eastwest_alert_store_write_errors",
                "Failed store transactions (retried).",
                &m.store_write_errors,
            ),
            (
                "eastwest_alert_spool_write_errors",
                "Failed writes of the alert spool.",
                &m.spool_write_errors,
            ),
            (
                "eastwest_sse_resyncs",
                "SSE clients that lagged and were told to resync.",
                &m.sse_resyncs,
            ),
        ] {
            counter(&mut encoder, name, help, load(value))?;
        }
        for (name, help, value) in [
            (
                "eastwest_alert_sink_pending",
                "Alerts and incidents waiting to be written.",
                &m.sink_pending,
            ),
            (
                "eastwest_alert_spool_alerts",
                "Alerts kept in the spool file while the store cannot write (written when it can).",
                &m.spool_alerts,
            ),
            (
                "eastwest_alerts_at_risk",
                "Pending alerts in neither the store nor the spool: lost if the process ends now.",
                &m.alerts_at_risk,
            ),
            (
                "eastwest_sse_clients",
                "Connected SSE clients.",
                &m.sse_clients,
            ),
        ] {
            gauge(&mut encoder, name, help, value.load(Ordering::Relaxed))?;
        }
        let mut family = encoder.encode_descriptor(
            "eastwest_http_refused",
            "Requests refused before any handler: foreign Host, cross-site Origin, missing \
             X-Eastwest-Request header, missing or wrong token.",
            None,
            MetricType::Counter,
        )?;
        for reason in Refusal::ALL {
            ConstCounter::new(load(&m.refused[reason as usize]))
                .encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "eastwest_webhook_outbox",
            "Outbox rows by destination and status (dead = dead letters).",
            None,
            MetricType::Gauge,
        )?;
        for (destination, status, n) in &self.outbox {
            let labels = [
                ("destination", destination.as_str()),
                ("status", status.as_str()),
            ];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let dead: u64 = self
            .outbox
            .iter()
            .filter(|(_, s, _)| s == "dead")
            .map(|(_, _, n)| n)
            .sum();
        let metric = ConstGauge::new(dead);
        metric.encode(encoder.encode_descriptor(
            "eastwest_webhook_dead_letters",
            "Deliveries given up after their last attempt.",
            None,
            metric.metric_type(),
        )?)
    }
}

/// Per-edge counters named like the OTel servicegraph connector's, so existing
/// Grafana service-graph boards work: encoded from the graph snapshot of this scrape,
/// at most `max_edges` edges (busiest first), so the series grow with the mesh only up
/// to that bound.
#[derive(Debug)]
struct ServiceGraph {
    edges: Vec<GraphEdge>,
}

impl ServiceGraph {
    fn new(graph: GraphSnapshot, max_edges: usize) -> Self {
        let mut edges = graph.edges;
        if edges.len() > max_edges {
            edges.sort_by(|a, b| b.calls.total_cmp(&a.calls));
            edges.truncate(max_edges);
        }
        Self { edges }
    }
}

impl Collector for ServiceGraph {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let series = [
            (
                "traces_service_graph_request",
                "Requests between two nodes.",
                false,
            ),
            (
                "traces_service_graph_request_failed",
                "Failed requests between two nodes.",
                true,
            ),
        ];
        for (name, help, failed) in series {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for e in &self.edges {
                let labels = [
                    ("client", e.source.as_str()),
                    ("server", e.destination.as_str()),
                    ("connection_type", ""),
                ];
                let v = if failed { e.errors } else { e.calls };
                let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
                ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
