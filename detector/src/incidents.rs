//! Incidents: findings from one source close in event time, lateral-movement paths
//! stitched from chains of new edges (petgraph), and storm incidents that group what
//! the alert budget counted in a storm alert. A source that reaches new callees one at
//! a time (low and slow) keeps one incident open for `slow_incident_window`, scored by
//! its new edges together.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use eastwest_model::{Alert, AlertKind, Incident, Severity, Workload};
use petgraph::Direction;
use petgraph::graphmap::DiGraphMap;

use crate::alerts::{severity, stable_id, time};
use crate::config::DetectorConfig;
use crate::score::combined_surprise;

/// Longest lateral-movement path reported.
const MAX_PATH: usize = 6;
/// Workloads tracked in the new-edge graph (attacker-controlled names).
const MAX_PATH_NODES: usize = 100_000;
/// New-edge alerts one incident combines into its score.
const MAX_COMBINED: usize = 64;

#[derive(Default)]
pub struct IncidentBook {
    incidents: HashMap<String, Incident>,
    /// Source workload key → its open incident id.
    open: HashMap<String, String>,
    new_edges: DiGraphMap<u32, ()>,
    node_ids: HashMap<String, u32>,
    node_names: Vec<String>,
    dirty: BTreeSet<String>,
    /// Incident id → its new-edge alerts and their scores.
    new_edge_scores: HashMap<String, BTreeMap<String, f64>>,
}

fn new_incident(id: String, source: Workload, t: i64) -> Incident {
    Incident {
        id,
        source,
        severity: Severity::Info,
        score: 0.0,
        first_seen: time(t),
        last_seen: time(t),
        alert_ids: Vec::new(),
        path: Vec::new(),
        suppressed: 0,
        summary: String::new(),
    }
}

impl IncidentBook {
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Workloads that reached `source` over a new edge since learning ended.
    pub fn reached_by(&self, source: &str) -> Vec<String> {
        let Some(&node) = self.node_ids.get(source) else {
            return Vec::new();
        };
        let mut v: Vec<String> = self
            .new_edges
            .neighbors_directed(node, Direction::Incoming)
            .map(|n| self.node_names[n as usize].clone())
            .collect();
        v.sort();
        v
    }

    fn node(&mut self, key: &str) -> Option<u32> {
        if let Some(id) = self.node_ids.get(key) {
            return Some(*id);
        }
        if self.node_names.len() >= MAX_PATH_NODES {
            return None;
        }
        let id = self.node_names.len() as u32;
        self.node_names.push(key.to_string());
        self.node_ids.insert(key.to_string(), id);
        Some(id)
    }

    /// Adds a new edge and returns the longest chain of new edges ending in it (≥ 3
    /// workloads), else empty.
    pub fn record_new_edge(&mut self, src: &str, dst: &str) -> Vec<String> {
        let (Some(a), Some(b)) = (self.node(src), self.node(dst)) else {
            return Vec::new();
        };
        self.new_edges.add_edge(a, b, ());
        let mut path = vec![b, a];
        let mut cur = a;
        while path.len() < MAX_PATH {
            let Some(prev) = self
                .new_edges
                .neighbors_directed(cur, Direction::Incoming)
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

    /// Folds alerts of one source at event time `t` into its open incident; returns the
    /// incident when it changed materially (new alert, severity, path), else marks it
    /// for the next flush.
    pub fn add(
        &mut self,
        source: &Workload,
        t: i64,
        alerts: &[Alert],
        path: Vec<String>,
        config: &DetectorConfig,
    ) -> (String, Option<Incident>) {
        let src = source.key();
        let window = config.incident_window.as_nanos() as i64;
        let slow_window = config.slow_incident_window.as_nanos() as i64;
        let new_edge = alerts.iter().any(|a| a.kind == AlertKind::NewEdge);
        let open = self
            .open
            .get(src.as_str())
            .and_then(|id| self.incidents.get(id))
            .filter(|i| {
                let since = t - i.last_seen.timestamp_nanos_opt().unwrap_or(0);
                since <= window
                    || (new_edge
                        && since <= slow_window
                        && self.new_edge_scores.contains_key(&i.id))
            })
            .map(|i| i.id.clone());
        let id = open.unwrap_or_else(|| {
            let id = stable_id(&["incident", &src, &t.to_string()]);
            self.incidents
                .insert(id.clone(), new_incident(id.clone(), source.clone(), t));
            self.open.insert(src.to_string(), id.clone());
            id
        });
        let incident = self.incidents.get_mut(&id).expect("incident just ensured");
        let before = (
            incident.alert_ids.len(),
            incident.severity,
            incident.path.len(),
        );
        incident.last_seen = incident.last_seen.max(time(t));
        for a in alerts {
            if !incident.alert_ids.contains(&a.id) {
                incident.alert_ids.push(a.id.clone());
            }
            incident.severity = incident.severity.max(a.severity);
            incident.score = incident.score.max(a.score);
        }
        if path.len() > incident.path.len() {
            incident.path = path;
            incident.severity = Severity::Critical;
        }
        if new_edge {
            let scores = self.new_edge_scores.entry(id.clone()).or_default();
            for a in alerts.iter().filter(|a| a.kind == AlertKind::NewEdge) {
                if scores.len() < MAX_COMBINED || scores.contains_key(&a.id) {
                    let best = scores.entry(a.id.clone()).or_insert(0.0);
                    *best = best.max(a.score);
                }
            }
        }
        let scores = self.new_edge_scores.get(&id);
        let reached = scores.map_or(0, BTreeMap::len);
        if let Some(scores) = scores.filter(|_| reached >= 2) {
            let values: Vec<f64> = scores.values().copied().collect();
            let combined = (combined_surprise(&values) * 100.0).round() / 100.0;
            if combined > incident.score {
                incident.score = combined;
                incident.severity = incident.severity.max(severity(combined, false));
            }
        }
        incident.summary = if incident.path.len() >= 3 {
            format!(
                "lateral movement {} ({} findings, max score {:.1})",
                incident.path.join(" → "),
                incident.alert_ids.len(),
                incident.score
            )
        } else if reached >= 2 {
            format!(
                "{src} reached {reached} workloads it never called, one at a time since {} ({} findings; score {:.1} for the new edges together)",
                incident
                    .first_seen
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                incident.alert_ids.len(),
                incident.score
            )
        } else {
            format!(
                "{} findings from {} (max score {:.1})",
                incident.alert_ids.len(),
                src,
                incident.score
            )
        };
        let changed = before
            != (
                incident.alert_ids.len(),
                incident.severity,
                incident.path.len(),
            );
        if changed {
            self.dirty.remove(&id);
            (id, Some(incident.clone()))
        } else {
            self.dirty.insert(id.clone());
            (id, None)
        }
    }

    /// Counts one suppressed finding in the storm incident of its budget pool and
    /// window, which holds the pool's storm alert; returns the incident's id, and the
    /// incident itself at powers of two (otherwise at the next flush).
    pub fn suppress(
        &mut self,
        pool: &str,
        window_start_ns: i64,
        storm_alert_id: &str,
        source: &Workload,
        t: i64,
    ) -> (String, Option<Incident>) {
        let id = stable_id(&["storm", pool, &window_start_ns.to_string()]);
        let incident = self.incidents.entry(id.clone()).or_insert_with(|| {
            let mut i = new_incident(id.clone(), source.clone(), t);
            i.severity = Severity::High;
            i.alert_ids.push(storm_alert_id.to_owned());
            i
        });
        incident.suppressed += 1;
        incident.last_seen = incident.last_seen.max(time(t));
        incident.summary = format!(
            "alert storm in {pool}: {} findings over the alert budget were counted in alert {storm_alert_id} instead of alerted one by one (first from {})",
            incident.suppressed,
            incident.source.key()
        );
        if incident.suppressed.is_power_of_two() {
            self.dirty.remove(&id);
            (id, Some(incident.clone()))
        } else {
            self.dirty.insert(id.clone());
            (id, None)
        }
    }

    pub fn flush(&mut self) -> Vec<Incident> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.incidents.get(&id).cloned())
            .collect()
    }
}
