//! The whole `/metrics` registry against a stub backend, read as a strict scraper would.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use eastwest_model::Alert;

use super::*;
use crate::graph::{EdgeDetail, EdgeStatus};

/// A sample: name, labels (unescaped), value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Reads a label set written as `{k="v",…}` (the part after the name), undoing the
/// three escapes the format has; `None` on anything else. Returns the rest.
fn labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut out = BTreeMap::new();
    s = s.strip_prefix('{')?;
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Some((out, rest));
        }
        let rest = if out.is_empty() {
            s
        } else {
            s.strip_prefix(',')?
        };
        let (key, rest) = rest.split_once("=\"")?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => value.push(match chars.next()?.1 {
                    '\\' => '\\',
                    '"' => '"',
                    'n' => '\n',
                    _ => return None,
                }),
                (_, c) => value.push(c),
            }
        };
        out.insert(key.to_string(), value);
        s = &rest[end + 1..];
    }
}

/// Checks the exposition line by line, as a strict scraper would: every family is
/// announced once, by HELP then TYPE (counter or gauge), and every sample belongs
/// to the family announced last and has a numeric value. Returns the samples.
fn parse(text: &str) -> BTreeMap<String, Vec<Sample>> {
    let mut families: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut help: Option<&str> = None;
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect(line);
            assert!(!text.is_empty(), "{line}");
            assert!(!families.contains_key(name), "announced twice: {line}");
            help = Some(name);
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert_eq!(help.take(), Some(name), "TYPE without HELP: {line}");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            families.insert(name.to_string(), Vec::new());
            current = Some(name);
        } else {
            let end = line.find(['{', ' ']).expect(line);
            let (name, rest) = line.split_at(end);
            assert_eq!(Some(name), current, "sample outside its family: {line}");
            let (labels, rest) = if rest.starts_with('{') {
                labels(rest).unwrap_or_else(|| panic!("bad label set: {line}"))
            } else {
                (BTreeMap::new(), rest)
            };
            let value = rest.strip_prefix(' ').and_then(|v| v.parse().ok());
            let value: f64 = value.unwrap_or_else(|| panic!("bad value: {line}"));
            let sample = (name.to_string(), labels, value);
            families.get_mut(name).unwrap().push(sample);
        }
    }
    families
}

fn edge(source: &str, destination: &str, calls: f64) -> GraphEdge {
    GraphEdge {
        source: source.into(),
        destination: destination.into(),
        calls,
        errors: calls / 10.0,
        first_seen: DateTime::<Utc>::UNIX_EPOCH,
        last_seen: DateTime::<Utc>::UNIX_EPOCH,
        mtls_ratio: None,
        protocols: Vec::new(),
        status: EdgeStatus::Baseline,
    }
}

const HOSTILE: &str = "we\"ird\\svc\nnext{x=\"1\"} 9.shop";

struct StubBackend;

impl Backend for StubBackend {
    fn stats(&self) -> crate::Stats {
        crate::Stats::default()
    }
    fn register_metrics(&self, registry: &mut Registry) {
        let spans: Counter = Counter::default();
        spans.inc_by(10);
        registry.register("eastwest_spans", "Spans received", spans);
    }
    fn graph(&self) -> GraphSnapshot {
        GraphSnapshot {
            nodes: vec![],
            edges: vec![
                edge("web.shop", "cart.shop", 120.0),
                edge("quiet.shop", "db.shop", 1.0),
                edge(HOSTILE, "db.shop", 5.0),
            ],
        }
    }
    fn edge_detail(&self, _: &str, _: &str) -> Option<EdgeDetail> {
        None
    }
    fn baseline_status(&self) -> eastwest_model::BaselineStatus {
        Default::default()
    }
    fn end_learning(&self) -> eastwest_model::BaselineStatus {
        Default::default()
    }
    fn accept(&self, _: &Alert) {}
    fn ready(&self) -> bool {
        true
    }
}

fn scrape(m: &Arc<ApiMetrics>, outbox: Vec<(String, String, u64)>) -> String {
    encode(&registry(&StubBackend, m, outbox, 2)).unwrap()
}

fn value(families: &BTreeMap<String, Vec<Sample>>, name: &str, want: &[(&str, &str)]) -> f64 {
    let found = families[name].iter().find(|(_, labels, _)| {
        want.iter()
            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
    });
    found.unwrap_or_else(|| panic!("no {name} {want:?}")).2
}

#[test]
fn every_family_has_help_and_type_and_label_values_are_escaped() {
    let m = Arc::new(ApiMetrics::default());
    m.count_http("GET", HOSTILE, 200);
    m.count_delivery(HOSTILE, DeliveryOutcome::DeadLettered);
    let outbox = vec![(HOSTILE.to_string(), "dead".to_string(), 2)];
    let text = scrape(&m, outbox);
    let families = parse(&text);
    let names: Vec<&str> = families.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "eastwest_alert_sink_batches_total",
            "eastwest_alert_sink_blocked_total",
            "eastwest_alert_sink_coalesced_total",
            "eastwest_alert_sink_pending",
            "eastwest_alert_spool_alerts",
            "eastwest_alert_spool_write_errors_total",
            "eastwest_alert_store_write_errors_total",
            "eastwest_alert_updates_total",
            "eastwest_alerts_at_risk",
            "eastwest_alerts_total",
            "eastwest_http_refused_total",
            "eastwest_http_requests_total",
            "eastwest_incidents_written_total",
            "eastwest_spans_total",
            "eastwest_sse_clients",
            "eastwest_sse_resyncs_total",
            "eastwest_webhook_dead_letters",
            "eastwest_webhook_deliveries_total",
            "eastwest_webhook_outbox",
            "traces_service_graph_request_failed_total",
            "traces_service_graph_request_total",
        ]
    );
    assert_eq!(value(&families, "eastwest_spans_total", &[]), 10.0);

    // The hostile name stays one label value, escaped as the format says.
    assert!(
        text.contains(
            r#"traces_service_graph_request_total{client="we\"ird\\svc\nnext{x=\"1\"} 9.shop",server="db.shop",connection_type=""} 5"#
        ),
        "{text}"
    );
    let graph = &families["traces_service_graph_request_total"];
    let clients: Vec<&str> = graph.iter().map(|s| s.1["client"].as_str()).collect();
    // Bounded by max_edges, busiest first: the quiet edge is left out.
    assert_eq!(clients, ["web.shop", HOSTILE]);
    assert_eq!(graph[0].1["connection_type"], "");
    let failed = &families["traces_service_graph_request_failed_total"];
    assert_eq!(failed[0].2, 12.0);
    for (name, key) in [
        ("eastwest_http_requests_total", "route"),
        ("eastwest_webhook_deliveries_total", "destination"),
        ("eastwest_webhook_outbox", "destination"),
    ] {
        assert_eq!(
            value(&families, name, &[(key, HOSTILE)]),
            if name.contains("outbox") { 2.0 } else { 1.0 },
            "{name}"
        );
    }
    let http = &families["eastwest_http_requests_total"][0].1;
    assert_eq!(
        (http["method"].as_str(), http["status"].as_str()),
        ("GET", "200")
    );
    assert_eq!(
        value(
            &families,
            "eastwest_webhook_deliveries_total",
            &[("outcome", "dead_lettered")]
        ),
        1.0
    );
    assert_eq!(value(&families, "eastwest_webhook_dead_letters", &[]), 2.0);
    assert_eq!(m.delivery_count(HOSTILE, DeliveryOutcome::DeadLettered), 1);
    assert_eq!(m.delivery_count(HOSTILE, DeliveryOutcome::Failed), 0);
}

#[test]
fn the_label_reader_refuses_what_a_scraper_would() {
    assert!(labels(r#"{a="x\"y"}"#).is_some());
    assert!(labels(r#"{a="x"y"}"#).is_none_or(|(_, rest)| !rest.is_empty()));
    assert!(labels(r#"{a="x\qy"}"#).is_none());
    assert!(labels("{a=\"x").is_none());
}

#[test]
fn alert_counters_are_per_kind_and_severity() {
    let m = Arc::new(ApiMetrics::default());
    m.count_new_alert(AlertKind::Probing, Severity::High);
    let text = scrape(&m, vec![]);
    assert!(text.contains("eastwest_alerts_total{kind=\"probing\",severity=\"high\"} 1\n"));
    assert!(text.contains("eastwest_alerts_total{kind=\"probing\",severity=\"low\"} 0\n"));
    let families = parse(&text);
    let n = AlertKind::ALL.len() * Severity::ALL.len();
    assert_eq!(families["eastwest_alerts_total"].len(), n);
    assert_eq!(m.count_total_new(), 1);
}

#[test]
fn refusals_are_counted_by_reason() {
    let m = Arc::new(ApiMetrics::default());
    m.count_refusal(Refusal::Origin);
    m.count_refusal(Refusal::Origin);
    m.count_refusal(Refusal::Token);
    let text = scrape(&m, vec![]);
    assert!(text.contains("eastwest_http_refused_total{reason=\"origin\"} 2\n"));
    assert!(text.contains("eastwest_http_refused_total{reason=\"token\"} 1\n"));
    assert!(text.contains("eastwest_http_refused_total{reason=\"host\"} 0\n"));
    for (i, r) in Refusal::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i, "ALL is in declaration order");
    }
}
