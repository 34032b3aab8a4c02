//! The engine: learning, per-call detection, alert dedup, incidents and paths — all on
//! event time, so a replay at any speed or batch split gives the same alerts.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use eastwest_baseline::Baseline;
use eastwest_model::{Alert, AlertKind, AlertState, Call, Incident, Severity};
use petgraph::graphmap::DiGraphMap;

use crate::config::DetectorConfig;
use crate::findings::{Detectors, Finding};

/// Calls folded into the baseline between published snapshots.
const PUBLISH_EVERY: u64 = 10_000;
/// Surprise added to a new edge that continues a chain of new edges (−ln of a ~1%
/// chance that two unrelated novelties line up).
const CHAIN_BONUS: f64 = 4.6;
/// Longest lateral-movement path reported.
const MAX_PATH: usize = 6;

#[derive(Debug, Default, Clone)]
pub struct EngineOutput {
    pub alerts: Vec<Alert>,
    pub incidents: Vec<Incident>,
}

/// FNV-1a: a stable id across processes and versions (std's hasher promises neither).
fn stable_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn severity(score: f64, sensitive: bool) -> Severity {
    let base = match score {
        s if s < 6.0 => 1,
        s if s < 9.0 => 2,
        s if s < 13.0 => 3,
        _ => 4,
    };
    let level = if sensitive { (base + 1).min(4) } else { base };
    Severity::ALL[level]
}

pub struct Engine {
    config: DetectorConfig,
    baseline: Baseline,
    detectors: Detectors,
    alerts: HashMap<String, Alert>,
    alert_order: VecDeque<String>,
    incidents: HashMap<String, Incident>,
    /// Source workload key → its open incident id.
    open_incident: HashMap<String, String>,
    /// New edges since learning ended (for paths).
    new_edges: DiGraphMap<u32, ()>,
    node_ids: HashMap<String, u32>,
    node_names: Vec<String>,
    since_publish: u64,
}

impl Engine {
    pub fn new(config: DetectorConfig, baseline: Baseline) -> Self {
        let detectors = Detectors::new(&config);
        Self {
            config,
            baseline,
            detectors,
            alerts: HashMap::new(),
            alert_order: VecDeque::new(),
            incidents: HashMap::new(),
            open_incident: HashMap::new(),
            new_edges: DiGraphMap::new(),
            node_ids: HashMap::new(),
            node_names: Vec::new(),
            since_publish: 0,
        }
    }

    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    pub fn baseline_mut(&mut self) -> &mut Baseline {
        &mut self.baseline
    }

    pub fn end_learning(&mut self, now_ns: i64) {
        if self.baseline.is_learning() {
            self.baseline.end_learning(now_ns);
        }
    }

    /// Closes windows up to the watermark. Per-call detectors need no windows; this
    /// publishes the baseline so readers see it.
    pub fn advance_to(&mut self, watermark_ns: i64) -> EngineOutput {
        if self.baseline.advance(watermark_ns) || self.since_publish > 0 {
            self.baseline.publish();
            self.since_publish = 0;
        }
        EngineOutput::default()
    }

    pub fn process(&mut self, call: &Call) -> EngineOutput {
        self.baseline.advance(call.event_time_ns);
        if self.baseline.is_learning() {
            self.observe(call);
            return EngineOutput::default();
        }
        let mut findings = self
            .detectors
            .evaluate(call, self.baseline.working(), &self.config);
        self.score_chains(call, &mut findings);
        let findings: Vec<Finding> = findings
            .into_iter()
            .filter(|f| {
                f.score >= self.config.min_score
                    || (f.sensitive && f.kind == AlertKind::SensitiveEndpoint)
            })
            .collect();
        if findings.is_empty() {
            // Drift: calls that raised nothing keep the baseline current.
            self.observe(call);
            return EngineOutput::default();
        }
        let mut out = EngineOutput::default();
        let new_edge = findings.iter().any(|f| f.kind == AlertKind::NewEdge);
        let path = if new_edge {
            self.record_new_edge(call)
        } else {
            Vec::new()
        };
        for finding in findings {
            let alert = self.upsert_alert(call, finding);
            out.alerts.push(alert);
        }
        let incident = self.update_incident(call, &out.alerts, path);
        for alert in &mut out.alerts {
            alert.incident_id = Some(incident.id.clone());
            if let Some(stored) = self.alerts.get_mut(&alert.id) {
                stored.incident_id = Some(incident.id.clone());
            }
        }
        out.incidents.push(incident);
        out
    }

    /// A new edge out of a workload that was itself just reached over a new edge is a
    /// hop of lateral movement, whatever that workload's own (possibly empty) history.
    fn score_chains(&mut self, call: &Call, findings: &mut [Finding]) {
        let Some(&node) = self.node_ids.get(&call.source.key()) else {
            return;
        };
        let reached_by: Vec<String> = self
            .new_edges
            .neighbors_directed(node, petgraph::Direction::Incoming)
            .map(|n| self.node_names[n as usize].clone())
            .collect();
        if reached_by.is_empty() {
            return;
        }
        for f in findings.iter_mut().filter(|f| f.kind == AlertKind::NewEdge) {
            f.score += CHAIN_BONUS;
            f.evidence.insert(
                "reached_over_new_edge_from".into(),
                serde_json::json!(reached_by),
            );
            f.summary.push_str(&format!(
                "; {} was itself just reached over a new edge from {}",
                call.source.key(),
                reached_by.join(", ")
            ));
        }
    }

    fn observe(&mut self, call: &Call) {
        self.baseline.observe(call);
        self.since_publish += 1;
        if self.since_publish >= PUBLISH_EVERY {
            self.baseline.publish();
            self.since_publish = 0;
        }
    }

    fn upsert_alert(&mut self, call: &Call, f: Finding) -> Alert {
        let (src, dst) = call.edge_key();
        let id = stable_id(&[f.kind.as_str(), &src, &dst, &call.method, &call.route]);
        let t = time(call.event_time_ns);
        let max_ids = self.config.max_trace_ids;
        if let Some(a) = self.alerts.get_mut(&id) {
            a.count += 1;
            a.first_seen = a.first_seen.min(t);
            a.last_seen = a.last_seen.max(t);
            if !call.trace_id.is_empty()
                && a.trace_ids.len() < max_ids
                && !a.trace_ids.contains(&call.trace_id)
            {
                a.trace_ids.push(call.trace_id.clone());
            }
            if f.score > a.score {
                a.score = f.score;
                a.severity = a.severity.max(severity(f.score, f.sensitive));
            }
            return a.clone();
        }
        let alert = Alert {
            id: id.clone(),
            kind: f.kind,
            severity: severity(f.score, f.sensitive),
            score: (f.score * 100.0).round() / 100.0,
            source: call.source.clone(),
            destination: Some(call.destination.clone()),
            method: Some(call.method.clone()),
            route: Some(call.route.clone()),
            entry: call.entry.clone(),
            first_seen: t,
            last_seen: t,
            count: 1,
            trace_ids: if call.trace_id.is_empty() {
                vec![]
            } else {
                vec![call.trace_id.clone()]
            },
            incident_id: None,
            summary: if call.trace_id.is_empty() {
                f.summary
            } else {
                format!("{} (e.g. trace {})", f.summary, call.trace_id)
            },
            evidence: f.evidence,
            state: AlertState::Open,
        };
        if self.alerts.len() >= self.config.max_tracked_alerts
            && let Some(old) = self.alert_order.pop_front()
        {
            self.alerts.remove(&old);
        }
        self.alert_order.push_back(id.clone());
        self.alerts.insert(id, alert.clone());
        alert
    }

    fn node(&mut self, key: String) -> u32 {
        if let Some(id) = self.node_ids.get(&key) {
            return *id;
        }
        let id = self.node_names.len() as u32;
        self.node_names.push(key.clone());
        self.node_ids.insert(key, id);
        id
    }

    /// Adds a new edge and returns the longest chain of new edges ending in it.
    fn record_new_edge(&mut self, call: &Call) -> Vec<String> {
        let (src, dst) = call.edge_key();
        let (a, b) = (self.node(src), self.node(dst));
        self.new_edges.add_edge(a, b, ());
        let mut path = vec![b, a];
        let mut cur = a;
        while path.len() < MAX_PATH {
            let Some(prev) = self
                .new_edges
                .neighbors_directed(cur, petgraph::Direction::Incoming)
                .filter(|n| !path.contains(n))
                .min()
            else {
                break;
            };
            path.push(prev);
            cur = prev;
        }
        if path.len() < 3 {
            return Vec::new();
        }
        path.reverse();
        path.into_iter()
            .map(|n| self.node_names[n as usize].clone())
            .collect()
    }

    fn update_incident(&mut self, call: &Call, alerts: &[Alert], path: Vec<String>) -> Incident {
        let src = call.source.key();
        let t = time(call.event_time_ns);
        let window = chrono::Duration::from_std(self.config.incident_window)
            .unwrap_or(chrono::Duration::MAX);
        let open = self
            .open_incident
            .get(&src)
            .and_then(|id| self.incidents.get(id))
            .filter(|i| t - i.last_seen <= window)
            .map(|i| i.id.clone());
        let id = open.unwrap_or_else(|| {
            let id = stable_id(&["incident", &src, &call.event_time_ns.to_string()]);
            self.incidents.insert(
                id.clone(),
                Incident {
                    id: id.clone(),
                    source: call.source.clone(),
                    severity: Severity::Info,
                    score: 0.0,
                    first_seen: t,
                    last_seen: t,
                    alert_ids: Vec::new(),
                    path: Vec::new(),
                    suppressed: 0,
                    summary: String::new(),
                },
            );
            self.open_incident.insert(src.clone(), id.clone());
            id
        });
        let incident = self.incidents.get_mut(&id).expect("incident just ensured");
        incident.last_seen = incident.last_seen.max(t);
        for a in alerts {
            if !incident.alert_ids.contains(&a.id) {
                incident.alert_ids.push(a.id.clone());
            }
            incident.severity = incident.severity.max(a.severity);
            incident.score = incident.score.max(a.score);
        }
        if path.len() > incident.path.len() {
            incident.path = path;
            incident.severity = incident.severity.max(Severity::Critical);
        }
        incident.summary = if incident.path.len() >= 3 {
            format!(
                "lateral movement {} ({} findings)",
                incident.path.join(" → "),
                incident.alert_ids.len()
            )
        } else {
            format!("{} findings from {}", incident.alert_ids.len(), src)
        };
        incident.clone()
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
