//! Views of the service graph small enough for a browser on a mesh of thousands of
//! services: namespaces as nodes with aggregated edges, and the service graph cut to a
//! namespace, a service's k-hop neighbourhood, edge statuses (with one hop of context)
//! or mTLS; plus a name search. Pure functions over a [`GraphSnapshot`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use eastwest_model::Protocol;

use crate::graph::{EdgeStatus, GraphEdge, GraphNode, GraphSnapshot};

/// Most hops a focus may ask for: beyond three a hub's neighbourhood is the whole mesh.
pub const MAX_HOPS: usize = 3;
pub const DEFAULT_SEARCH_LIMIT: usize = 20;
pub const MAX_SEARCH_LIMIT: usize = 200;

/// One namespace: its services and the edges inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceNode {
    /// The namespace name; empty for workloads whose telemetry named none.
    pub id: String,
    pub services: usize,
    /// Edges between services of this namespace, and their calls.
    pub internal_edges: usize,
    pub internal_calls: f64,
    /// The worst status of any edge touching one of its services.
    pub status: EdgeStatus,
}

/// All edges from services of one namespace to services of another, added up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceEdge {
    pub source: String,
    pub destination: String,
    /// Service edges folded into this one.
    pub edges: usize,
    pub calls: f64,
    pub errors: f64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Calls-weighted over the edges whose telemetry said; `None` when none said.
    pub mtls_ratio: Option<f64>,
    /// The worst of its edges' (`alerted` > `new` > `baseline`).
    pub status: EdgeStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespaceGraph {
    pub nodes: Vec<NamespaceNode>,
    pub edges: Vec<NamespaceEdge>,
}

/// A cut of the service graph, with the size of the whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphView {
    #[serde(flatten)]
    pub graph: GraphSnapshot,
    /// Services the cut matched before `limit` (more than `nodes` when it was cut).
    pub matched_nodes: usize,
    pub total_nodes: usize,
    pub total_edges: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlsFilter {
    /// Every call said mTLS.
    Mtls,
    /// Some call said plaintext.
    Plaintext,
}

/// What `GET /api/v1/graph` keeps; every part optional, all parts together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphQuery {
    /// Edges with at least one end in this namespace.
    pub namespace: Option<String>,
    /// This workload key and everything within `hops` calls of it, either direction.
    pub focus: Option<String>,
    pub hops: usize,
    /// Edges of these statuses, and the edges touching their ends (one hop of context).
    pub statuses: Vec<EdgeStatus>,
    pub mtls: Option<MtlsFilter>,
    /// Edges whose calls used this protocol.
    pub protocol: Option<Protocol>,
    /// At most this many services: those on alerted edges, then on new edges, then the
    /// busiest (a namespace of a thousand services is no picture); the focus always.
    pub limit: Option<usize>,
}

fn rank(s: EdgeStatus) -> u8 {
    match s {
        EdgeStatus::Baseline => 0,
        EdgeStatus::New => 1,
        EdgeStatus::Alerted => 2,
    }
}

fn worst(a: EdgeStatus, b: EdgeStatus) -> EdgeStatus {
    if rank(b) > rank(a) { b } else { a }
}

/// Workload key → namespace ("" when telemetry named none).
struct Namespaces<'a>(HashMap<&'a str, &'a str>);

impl<'a> Namespaces<'a> {
    fn of(snapshot: &'a GraphSnapshot) -> Self {
        Self(
            snapshot
                .nodes
                .iter()
                .map(|n| (n.id.as_str(), n.namespace.as_deref().unwrap_or("")))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> &'a str {
        self.0.get(key).copied().unwrap_or("")
    }
}

pub fn namespace_graph(snapshot: &GraphSnapshot) -> NamespaceGraph {
    let namespaces = Namespaces::of(snapshot);
    let mut nodes: BTreeMap<&str, NamespaceNode> = BTreeMap::new();
    fn node<'m, 'a>(
        nodes: &'m mut BTreeMap<&'a str, NamespaceNode>,
        ns: &'a str,
    ) -> &'m mut NamespaceNode {
        nodes.entry(ns).or_insert_with(|| NamespaceNode {
            id: ns.to_string(),
            services: 0,
            internal_edges: 0,
            internal_calls: 0.0,
            status: EdgeStatus::Baseline,
        })
    }
    for n in &snapshot.nodes {
        node(&mut nodes, namespaces.get(&n.id)).services += 1;
    }
    // (source ns, destination ns) → (edge, calls known to say mTLS, mTLS-weighted calls)
    let mut edges: BTreeMap<(&str, &str), (NamespaceEdge, f64, f64)> = BTreeMap::new();
    for e in &snapshot.edges {
        let (s, d) = (namespaces.get(&e.source), namespaces.get(&e.destination));
        for end in [s, d] {
            let n = node(&mut nodes, end);
            n.status = worst(n.status, e.status);
        }
        if s == d {
            let n = node(&mut nodes, s);
            n.internal_edges += 1;
            n.internal_calls += e.calls;
            continue;
        }
        let (agg, said, weighted) = edges.entry((s, d)).or_insert_with(|| {
            (
                NamespaceEdge {
                    source: s.to_string(),
                    destination: d.to_string(),
                    edges: 0,
                    calls: 0.0,
                    errors: 0.0,
                    first_seen: e.first_seen,
                    last_seen: e.last_seen,
                    mtls_ratio: None,
                    status: EdgeStatus::Baseline,
                },
                0.0,
                0.0,
            )
        });
        agg.edges += 1;
        agg.calls += e.calls;
        agg.errors += e.errors;
        agg.first_seen = agg.first_seen.min(e.first_seen);
        agg.last_seen = agg.last_seen.max(e.last_seen);
        agg.status = worst(agg.status, e.status);
        if let Some(r) = e.mtls_ratio {
            // An edge with no calls counted still said something: weigh it as one call.
            let w = e.calls.max(1.0);
            *said += w;
            *weighted += r * w;
        }
    }
    NamespaceGraph {
        nodes: nodes.into_values().collect(),
        edges: edges
            .into_values()
            .map(|(mut e, said, weighted)| {
                e.mtls_ratio = (said > 0.0).then(|| weighted / said);
                e
            })
            .collect(),
    }
}

fn mtls_matches(e: &GraphEdge, filter: MtlsFilter) -> bool {
    match (filter, e.mtls_ratio) {
        (MtlsFilter::Mtls, Some(r)) => r >= 1.0,
        (MtlsFilter::Plaintext, Some(r)) => r < 1.0,
        (_, None) => false,
    }
}

/// Keys within `hops` of `start` over `edges`, either direction (callers and callees).
fn neighbourhood<'a>(edges: &[&'a GraphEdge], start: &'a str, hops: usize) -> HashSet<&'a str> {
    let mut adjacent: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in edges {
        adjacent.entry(&e.source).or_default().push(&e.destination);
        adjacent.entry(&e.destination).or_default().push(&e.source);
    }
    let mut reached = HashSet::from([start]);
    let mut queue = VecDeque::from([(start, 0)]);
    while let Some((key, depth)) = queue.pop_front() {
        if depth == hops {
            continue;
        }
        for next in adjacent.get(key).into_iter().flatten() {
            if reached.insert(next) {
                queue.push_back((next, depth + 1));
            }
        }
    }
    reached
}

pub fn filter(snapshot: &GraphSnapshot, query: &GraphQuery) -> GraphView {
    let namespaces = Namespaces::of(snapshot);
    let ns = |key: &str| namespaces.get(key);
    let mut edges: Vec<&GraphEdge> = snapshot.edges.iter().collect();
    if let Some(m) = query.mtls {
        edges.retain(|e| mtls_matches(e, m));
    }
    if let Some(p) = query.protocol {
        edges.retain(|e| e.protocols.contains(&p));
    }
    if let Some(want) = &query.namespace {
        edges.retain(|e| ns(&e.source) == want || ns(&e.destination) == want);
    }
    if let Some(focus) = &query.focus {
        let near = neighbourhood(&edges, focus, query.hops.clamp(1, MAX_HOPS));
        edges.retain(|e| near.contains(e.source.as_str()) && near.contains(e.destination.as_str()));
    }
    if !query.statuses.is_empty() {
        let ends: HashSet<&str> = edges
            .iter()
            .filter(|e| query.statuses.contains(&e.status))
            .flat_map(|e| [e.source.as_str(), e.destination.as_str()])
            .collect();
        edges.retain(|e| ends.contains(e.source.as_str()) || ends.contains(e.destination.as_str()));
    }
    let mut keep: HashSet<&str> = edges
        .iter()
        .flat_map(|e| [e.source.as_str(), e.destination.as_str()])
        .collect();
    if let Some(focus) = &query.focus {
        keep.insert(focus);
    }
    if let Some(want) = &query.namespace
        && query.focus.is_none()
        && query.statuses.is_empty()
        && query.mtls.is_none()
        && query.protocol.is_none()
    {
        // A namespace's services show even when they have no edge yet.
        keep.extend(
            snapshot
                .nodes
                .iter()
                .filter(|n| ns(&n.id) == want)
                .map(|n| n.id.as_str()),
        );
    }
    let matched_nodes = keep.len();
    if let Some(limit) = query.limit.filter(|l| keep.len() > *l) {
        keep = busiest(&edges, &keep, query.focus.as_deref(), limit);
        edges.retain(|e| keep.contains(e.source.as_str()) && keep.contains(e.destination.as_str()));
    }
    let nodes: Vec<GraphNode> = snapshot
        .nodes
        .iter()
        .filter(|n| keep.contains(n.id.as_str()))
        .cloned()
        .collect();
    GraphView {
        matched_nodes,
        graph: GraphSnapshot {
            nodes,
            edges: edges.into_iter().cloned().collect(),
        },
        total_nodes: snapshot.nodes.len(),
        total_edges: snapshot.edges.len(),
    }
}

/// The `limit` services of `keep` that matter most: the focus, then those touching an
/// alerted edge, then a new one, then by calls in and out.
fn busiest<'a>(
    edges: &[&'a GraphEdge],
    keep: &HashSet<&'a str>,
    focus: Option<&str>,
    limit: usize,
) -> HashSet<&'a str> {
    let mut weight: HashMap<&str, (u8, f64)> = keep.iter().map(|k| (*k, (0, 0.0))).collect();
    for e in edges {
        for end in [e.source.as_str(), e.destination.as_str()] {
            if let Some(w) = weight.get_mut(end) {
                w.0 = w.0.max(rank(e.status));
                w.1 += e.calls;
            }
        }
    }
    let mut ranked: Vec<(&str, (u8, f64))> = weight.into_iter().collect();
    ranked.sort_by(|a, b| {
        let focus_first = (Some(b.0) == focus).cmp(&(Some(a.0) == focus));
        focus_first
            .then(b.1.0.cmp(&a.1.0))
            .then(b.1.1.total_cmp(&a.1.1))
            .then(a.0.cmp(b.0))
    });
    ranked.into_iter().take(limit).map(|(k, _)| k).collect()
}

/// Services whose key contains `q` (case-insensitive): exact keys first, then names that
/// start with it, then the rest, each by key.
pub fn search<'a>(snapshot: &'a GraphSnapshot, q: &str, limit: usize) -> Vec<&'a GraphNode> {
    let q = q.to_lowercase();
    let mut hits: Vec<(u8, &GraphNode)> = snapshot
        .nodes
        .iter()
        .filter_map(|n| {
            let key = n.id.to_lowercase();
            let service = n.service.to_lowercase();
            if key == q || service == q {
                Some((0, n))
            } else if key.starts_with(&q) || service.starts_with(&q) {
                Some((1, n))
            } else {
                key.contains(&q).then_some((2, n))
            }
        })
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    hits.into_iter().take(limit).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str) -> GraphNode {
        let (service, ns) = key.split_once('.').unwrap();
        GraphNode {
            id: key.into(),
            service: service.into(),
            namespace: Some(ns.into()),
        }
    }

    fn edge(s: &str, d: &str, calls: f64, mtls: Option<f64>, status: EdgeStatus) -> GraphEdge {
        GraphEdge {
            source: s.into(),
            destination: d.into(),
            calls,
            errors: 1.0,
            first_seen: DateTime::UNIX_EPOCH,
            last_seen: DateTime::UNIX_EPOCH,
            mtls_ratio: mtls,
            // Only the database edges speak `db`.
            protocols: vec![if d.starts_with("db.") {
                Protocol::Db
            } else {
                Protocol::Http
            }],
            status,
        }
    }

    /// web.front → cart.shop → users.shop → db.data, pay.shop → db.data (new, plaintext),
    /// cart.shop → vault.sec (alerted).
    fn mesh() -> GraphSnapshot {
        use EdgeStatus::*;
        GraphSnapshot {
            nodes: [
                "web.front",
                "cart.shop",
                "users.shop",
                "pay.shop",
                "db.data",
                "vault.sec",
                "lonely.shop",
            ]
            .map(node)
            .to_vec(),
            edges: vec![
                edge("web.front", "cart.shop", 100.0, Some(1.0), Baseline),
                edge("cart.shop", "users.shop", 50.0, Some(1.0), Baseline),
                edge("users.shop", "db.data", 30.0, Some(1.0), Baseline),
                edge("pay.shop", "db.data", 10.0, Some(0.0), New),
                edge("cart.shop", "vault.sec", 2.0, None, Alerted),
            ],
        }
    }

    fn keys(v: &GraphView) -> Vec<&str> {
        let mut k: Vec<&str> = v.graph.nodes.iter().map(|n| n.id.as_str()).collect();
        k.sort();
        k
    }

    #[test]
    fn namespaces_aggregate_edges_counts_and_the_worst_status() {
        let g = namespace_graph(&mesh());
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["data", "front", "sec", "shop"]);
        let shop = g.nodes.iter().find(|n| n.id == "shop").unwrap();
        assert_eq!(
            (shop.services, shop.internal_edges, shop.internal_calls),
            (4, 1, 50.0)
        );
        assert_eq!(shop.status, EdgeStatus::Alerted);
        let to_data = g
            .edges
            .iter()
            .find(|e| e.source == "shop" && e.destination == "data")
            .unwrap();
        assert_eq!(
            (to_data.edges, to_data.calls, to_data.errors),
            (2, 40.0, 2.0)
        );
        // 30 calls all mTLS, 10 all plaintext: 75 %.
        assert_eq!(to_data.mtls_ratio, Some(0.75));
        assert_eq!(to_data.status, EdgeStatus::New);
        let to_sec = g.edges.iter().find(|e| e.destination == "sec").unwrap();
        assert_eq!(
            (to_sec.mtls_ratio, to_sec.status),
            (None, EdgeStatus::Alerted)
        );
        assert_eq!(g.edges.len(), 3, "no self-loops: {:?}", g.edges);
    }

    #[test]
    fn focus_takes_k_hops_both_ways() {
        let one = filter(
            &mesh(),
            &GraphQuery {
                focus: Some("users.shop".into()),
                hops: 1,
                ..Default::default()
            },
        );
        assert_eq!(keys(&one), ["cart.shop", "db.data", "users.shop"]);
        assert_eq!(one.graph.edges.len(), 2);
        assert_eq!((one.total_nodes, one.total_edges), (7, 5));
        let two = filter(
            &mesh(),
            &GraphQuery {
                focus: Some("users.shop".into()),
                hops: 2,
                ..Default::default()
            },
        );
        assert_eq!(
            keys(&two),
            [
                "cart.shop",
                "db.data",
                "pay.shop",
                "users.shop",
                "vault.sec",
                "web.front"
            ]
        );
        let alone = filter(
            &mesh(),
            &GraphQuery {
                focus: Some("lonely.shop".into()),
                hops: 1,
                ..Default::default()
            },
        );
        assert_eq!(keys(&alone), ["lonely.shop"]);
    }

    #[test]
    fn status_filter_keeps_one_hop_of_context() {
        let q = GraphQuery {
            statuses: vec![EdgeStatus::Alerted],
            ..Default::default()
        };
        let v = filter(&mesh(), &q);
        // cart → vault plus every edge touching cart or vault.
        assert_eq!(
            keys(&v),
            ["cart.shop", "users.shop", "vault.sec", "web.front"]
        );
        assert_eq!(v.graph.edges.len(), 3);
        let none = filter(
            &GraphSnapshot {
                nodes: vec![],
                edges: vec![],
            },
            &q,
        );
        assert!(none.graph.nodes.is_empty());
    }

    #[test]
    fn namespace_and_mtls_cut_edges() {
        let shop = filter(
            &mesh(),
            &GraphQuery {
                namespace: Some("data".into()),
                ..Default::default()
            },
        );
        assert_eq!(keys(&shop), ["db.data", "pay.shop", "users.shop"]);
        let lonely = filter(
            &mesh(),
            &GraphQuery {
                namespace: Some("shop".into()),
                ..Default::default()
            },
        );
        assert!(
            keys(&lonely).contains(&"lonely.shop"),
            "a namespace shows its edgeless services"
        );
        let plain = filter(
            &mesh(),
            &GraphQuery {
                mtls: Some(MtlsFilter::Plaintext),
                ..Default::default()
            },
        );
        assert_eq!(keys(&plain), ["db.data", "pay.shop"]);
        let secure = filter(
            &mesh(),
            &GraphQuery {
                mtls: Some(MtlsFilter::Mtls),
                ..Default::default()
            },
        );
        assert_eq!(secure.graph.edges.len(), 3);
        let db = filter(
            &mesh(),
            &GraphQuery {
                protocol: Some(Protocol::Db),
                ..Default::default()
            },
        );
        assert_eq!(keys(&db), ["db.data", "pay.shop", "users.shop"]);
        let grpc = filter(
            &mesh(),
            &GraphQuery {
                protocol: Some(Protocol::Grpc),
                ..Default::default()
            },
        );
        assert!(grpc.graph.nodes.is_empty());
    }

    #[test]
    fn a_limit_keeps_alerted_then_new_then_busiest() {
        let q = GraphQuery {
            limit: Some(3),
            ..Default::default()
        };
        let v = filter(&mesh(), &q);
        // cart and vault (alerted), then pay and db (new): cart, vault and db by calls.
        assert_eq!(keys(&v), ["cart.shop", "db.data", "vault.sec"]);
        assert_eq!(v.matched_nodes, 6);
        assert!(v.graph.edges.iter().all(|e| e.source != "users.shop"));
        let focused = filter(
            &mesh(),
            &GraphQuery {
                focus: Some("web.front".into()),
                hops: 3,
                limit: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(keys(&focused), ["web.front"]);
    }

    #[test]
    fn search_ranks_exact_then_prefix_then_substring() {
        let mut m = mesh();
        m.nodes.push(node("cartography.shop"));
        m.nodes.push(node("mycart.shop"));
        let hits: Vec<&str> = search(&m, "CART", 10)
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(hits, ["cart.shop", "cartography.shop", "mycart.shop"]);
        assert_eq!(search(&m, "cart", 1).len(), 1);
        assert!(search(&m, "nothing", 10).is_empty());
    }
}
