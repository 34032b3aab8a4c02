//! The service graph as the API shows it, and the blast-radius computation over it.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use eastwest_model::{Alert, Protocol};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Bfs;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EdgeStatus {
    /// Learned during the baseline.
    #[default]
    Baseline,
    /// Seen after learning ended.
    New,
    /// Has an alert that was not accepted (overlaid by the API from the store).
    Alerted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// Workload key (`service.namespace`).
    pub id: String,
    pub service: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub source: String,
    pub destination: String,
    /// Cumulative (sampling-weighted) calls since start; exported as a counter.
    pub calls: f64,
    pub errors: f64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Share of calls with mTLS among calls whose telemetry said; `None` when none said.
    pub mtls_ratio: Option<f64>,
    /// The protocols its calls used (`http`, `grpc`, `db`, `messaging`, `tcp`), as far
    /// as this process saw them since it started.
    #[serde(default)]
    pub protocols: Vec<Protocol>,
    pub status: EdgeStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GraphSnapshot {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    pub method: String,
    pub route: String,
    pub calls: f64,
    pub errors: f64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// `GET /api/v1/graph/edge`: the edge, its endpoints, example traces and its alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeDetail {
    #[serde(flatten)]
    pub edge: GraphEdge,
    pub endpoints: Vec<EndpointSummary>,
    /// Recent example trace ids.
    pub trace_ids: Vec<String>,
    /// Filled by the API from the alert store; backends leave it empty.
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// Marks edges that carry an unaccepted alert as `alerted`.
pub(crate) fn overlay_alerted(snapshot: &mut GraphSnapshot, alerted: &HashSet<(String, String)>) {
    for edge in &mut snapshot.edges {
        if alerted.contains(&(edge.source.clone(), edge.destination.clone())) {
            edge.status = EdgeStatus::Alerted;
        }
    }
}

/// Every workload reachable from `start` over known edges (excluding `start`), sorted.
pub fn blast_radius(snapshot: &GraphSnapshot, start: &str) -> Vec<String> {
    let mut graph: DiGraph<&str, ()> = DiGraph::new();
    let mut index: HashMap<&str, NodeIndex> = HashMap::new();
    for key in snapshot.nodes.iter().map(|n| n.id.as_str()).chain(
        snapshot
            .edges
            .iter()
            .flat_map(|e| [e.source.as_str(), e.destination.as_str()]),
    ) {
        index.entry(key).or_insert_with(|| graph.add_node(key));
    }
    for edge in &snapshot.edges {
        graph.update_edge(
            index[edge.source.as_str()],
            index[edge.destination.as_str()],
            (),
        );
    }
    let Some(&start_ix) = index.get(start) else {
        return Vec::new();
    };
    let mut reached = BTreeSet::new();
    let mut bfs = Bfs::new(&graph, start_ix);
    while let Some(ix) = bfs.next(&graph) {
        if ix != start_ix {
            reached.insert(graph[ix].to_string());
        }
    }
    reached.into_iter().collect()
}

/// Whether `key` is a node or an edge endpoint of the snapshot.
pub(crate) fn knows_service(snapshot: &GraphSnapshot, key: &str) -> bool {
    snapshot.nodes.iter().any(|n| n.id == key)
        || snapshot
            .edges
            .iter()
            .any(|e| e.source == key || e.destination == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn edge(s: &str, d: &str) -> GraphEdge {
        GraphEdge {
            source: s.into(),
            destination: d.into(),
            calls: 1.0,
            errors: 0.0,
            first_seen: DateTime::UNIX_EPOCH,
            last_seen: DateTime::UNIX_EPOCH,
            mtls_ratio: None,
            protocols: Vec::new(),
            status: EdgeStatus::Baseline,
        }
    }

    #[test]
    fn blast_radius_follows_edges_transitively_and_survives_cycles() {
        let snap = GraphSnapshot {
            nodes: vec![],
            edges: vec![
                edge("a", "b"),
                edge("b", "c"),
                edge("c", "a"),
                edge("x", "a"),
                edge("c", "d"),
            ],
        };
        assert_eq!(blast_radius(&snap, "a"), vec!["b", "c", "d"]);
        assert_eq!(blast_radius(&snap, "d"), Vec::<String>::new());
        assert_eq!(blast_radius(&snap, "x"), vec!["a", "b", "c", "d"]);
        assert!(blast_radius(&snap, "nope").is_empty());
    }

    #[test]
    fn edge_detail_flattens_the_edge_fields() {
        let d = EdgeDetail {
            edge: edge("a", "b"),
            endpoints: vec![],
            trace_ids: vec![],
            alerts: vec![],
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["source"], "a");
        assert_eq!(v["status"], "baseline");
        assert!(v["endpoints"].is_array());
    }
}
