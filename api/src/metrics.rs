//! The API's own Prometheus counters and the text rendering of `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use eastwest_model::{AlertKind, Severity};
use parking_lot::Mutex;

use crate::graph::GraphSnapshot;

/// Webhook delivery outcomes counted per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

#[derive(Default)]
pub struct ApiMetrics {
    /// New alerts by [kind][severity].
    alerts_new: [[AtomicU64; 5]; 9],
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
    /// (method, route template, status) → count; routes are templates, so bounded.
    http_requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (destination, outcome) → count; destinations come from config, so bounded.
    deliveries: Mutex<BTreeMap<(String, DeliveryOutcome), u64>>,
    /// Requests refused at the edge, by [`Refusal`] in `Refusal::ALL` order.
    refused: [AtomicU64; 4],
}

fn kind_index(kind: AlertKind) -> usize {
    AlertKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn severity_index(s: Severity) -> usize {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl ApiMetrics {
    pub fn count_new_alert(&self, kind: AlertKind, severity: Severity) {
        self.alerts_new[kind_index(kind)][severity_index(severity)].fetch_add(1, Ordering::Relaxed);
    }

    /// New alerts stored since start, all kinds and severities.
    pub fn count_total_new(&self) -> u64 {
        self.alerts_new
            .iter()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn count_http(&self, method: &str, route: &str, status: u16) {
        *self
            .http_requests
            .lock()
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }

    pub(crate) fn count_refusal(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_delivery(&self, destination: &str, outcome: DeliveryOutcome) {
        *self
            .deliveries
            .lock()
            .entry((destination.to_string(), outcome))
            .or_default() += 1;
    }

    pub fn delivery_count(&self, destination: &str, outcome: DeliveryOutcome) -> u64 {
        self.deliveries
            .lock()
            .get(&(destination.to_string(), outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Renders the API's own series. `outbox` is (destination, status, rows) from the store.
    pub fn render(&self, out: &mut String, outbox: &[(String, String, u64)]) {
        header(
            out,
            "eastwest_alerts_total",
            "counter",
            "New alerts stored, by kind and severity.",
        );
        for kind in AlertKind::ALL {
            for sev in Severity::ALL {
                let n =
                    self.alerts_new[kind_index(kind)][severity_index(sev)].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "eastwest_alerts_total{{kind=\"{}\",severity=\"{}\"}} {n}",
                    kind.as_str(),
                    sev.as_str()
                );
            }
        }
        let simple: [(&str, &str, &str, i64); 11] = [
            (
                "eastwest_alert_updates_total",
                "counter",
                "Updates of already stored alerts.",
                self.alert_updates.load(Ordering::Relaxed) as i64,
            ),
            (
                "eastwest_incidents_written_total",
                "counter",
                "Incident versions stored.",
                self.incidents_written.load(Ordering::Relaxed) as i64,
            ),
            (
                "eastwest_alert_sink_batches_total",
                "counter",
                "Store transactions committed by the alert sink.",
                self.sink_batches.load(Ordering::Relaxed) as i64,
            ),
            (
                "eastwest_alert_sink_coalesced_total",
                "counter",
                "Alert updates folded into a pending write of the same alert.",
                self.sink_coalesced.load(Ordering::Relaxed) as i64,
            ),
            (
                "eastwest_alert_sink_blocked_total",
                "counter",
                "Publishes that waited for the store writer (back-pressure).",
                self.sink_blocked.load(Ordering::Relaxed) as i64,
            ),
            (
                "eastwest_alert_sink_pending",
                "gauge",
                "Alerts and incidents waiting to be written.",
                self.sink_pending.load(Ordering::Relaxed),
            ),
            (
                "eastwest_alert_store_write_errors_total",
                "counter",
                "Failed store transactions (retried).",
                self.store_write_errors.load(Ordering::Relaxed) as i64,
            ),
            (
                "eastwest_alert_spool_alerts",
                "gauge",
                "Alerts kept in the spool file while the store cannot write (written when it can).",
                self.spool_alerts.load(Ordering::Relaxed),
            ),
            (
                "eastwest_alerts_at_risk",
                "gauge",
                "Pending alerts in neither the store nor the spool: lost if the process ends now.",
                self.alerts_at_risk.load(Ordering::Relaxed),
            ),
            (
                "eastwest_alert_spool_write_errors_total",
                "counter",
                "Failed writes of the alert spool.",
                self.spool_write_errors.load(Ordering::Relaxed) as i64,
            ),
            (
                "eastwest_sse_clients",
                "gauge",
                "Connected SSE clients.",
                self.sse_clients.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in simple {
            header(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            out,
            "eastwest_sse_resyncs_total",
            "counter",
            "SSE clients that lagged and were told to resync.",
        );
        let _ = writeln!(
            out,
            "eastwest_sse_resyncs_total {}",
            self.sse_resyncs.load(Ordering::Relaxed)
        );

        header(
            out,
            "eastwest_http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
        );
        for ((method, route, status), n) in self.http_requests.lock().iter() {
            let _ = writeln!(
                out,
                "eastwest_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape_label(method),
                escape_label(route)
            );
        }
        header(
            out,
            "eastwest_webhook_deliveries_total",
            "counter",
            "Webhook delivery attempts by destination and outcome.",
        );
        for ((dest, outcome), n) in self.deliveries.lock().iter() {
            let _ = writeln!(
                out,
                "eastwest_webhook_deliveries_total{{destination=\"{}\",outcome=\"{}\"}} {n}",
                escape_label(dest),
                outcome.as_str()
            );
        }
        header(
            out,
            "eastwest_http_refused_total",
            "counter",
            "Requests refused before any handler: foreign Host, cross-site Origin, missing \
             X-Eastwest-Request header, missing or wrong token.",
        );
        for reason in Refusal::ALL {
            let _ = writeln!(
                out,
                "eastwest_http_refused_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                self.refused[reason as usize].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "eastwest_webhook_outbox",
            "gauge",
            "Outbox rows by destination and status (dead = dead letters).",
        );
        for (dest, status, n) in outbox {
            let _ = writeln!(
                out,
                "eastwest_webhook_outbox{{destination=\"{}\",status=\"{}\"}} {n}",
                escape_label(dest),
                escape_label(status)
            );
        }
        let dead: u64 = outbox
            .iter()
            .filter(|(_, s, _)| s == "dead")
            .map(|(_, _, n)| n)
            .sum();
        header(
            out,
            "eastwest_webhook_dead_letters",
            "gauge",
            "Deliveries given up after their last attempt.",
        );
        let _ = writeln!(out, "eastwest_webhook_dead_letters {dead}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Prometheus label value escaping: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Per-edge counters named like the OTel servicegraph connector's, so existing
/// Grafana service-graph boards work. At most `max_edges` edges (busiest first).
pub fn render_service_graph(out: &mut String, graph: &GraphSnapshot, max_edges: usize) {
    let mut edges: Vec<_> = graph.edges.iter().collect();
    if edges.len() > max_edges {
        edges.sort_by(|a, b| b.calls.total_cmp(&a.calls));
        edges.truncate(max_edges);
    }
    for (name, help, value) in [
        (
            "traces_service_graph_request_total",
            "Requests between two nodes.",
            0,
        ),
        (
            "traces_service_graph_request_failed_total",
            "Failed requests between two nodes.",
            1,
        ),
    ] {
        header(out, name, "counter", help);
        for e in &edges {
            let v = if value == 0 { e.calls } else { e.errors };
            let _ = writeln!(
                out,
                "{name}{{client=\"{}\",server=\"{}\",connection_type=\"\"}} {}",
                escape_label(&e.source),
                escape_label(&e.destination),
                if v.is_finite() { v.max(0.0) } else { 0.0 }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_label("plain.ns"), "plain.ns");
    }

    #[test]
    fn alert_counters_are_per_kind_and_severity() {
        let m = ApiMetrics::default();
        m.count_new_alert(AlertKind::Probing, Severity::High);
        let mut out = String::new();
        m.render(&mut out, &[]);
        assert!(out.contains("eastwest_alerts_total{kind=\"probing\",severity=\"high\"} 1\n"));
        assert!(out.contains("eastwest_alerts_total{kind=\"probing\",severity=\"low\"} 0\n"));
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let m = ApiMetrics::default();
        m.count_refusal(Refusal::Origin);
        m.count_refusal(Refusal::Origin);
        m.count_refusal(Refusal::Token);
        let mut out = String::new();
        m.render(&mut out, &[]);
        assert!(out.contains("eastwest_http_refused_total{reason=\"origin\"} 2\n"));
        assert!(out.contains("eastwest_http_refused_total{reason=\"token\"} 1\n"));
        assert!(out.contains("eastwest_http_refused_total{reason=\"host\"} 0\n"));
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in declaration order");
        }
    }
}
