//! A large mesh from a Jaeger dependency graph (`[{parent, child, callCount}]`, the
//! shape of Jaeger's `/api/dependencies`). Built in: the Jaeger UI's 1,238-service,
//! 4,271-edge sample graph (`data/jaeger-large-dependencies.tsv`, Apache-2.0; service
//! names are anonymised `ServiceN`, lower-cased here).
//!
//! Request trees: every service nobody calls is an entry service with one route; its
//! tree walks the graph depth-first from it (at most 4 callees at the entry, 3 below,
//! depth 5, 24 hops, never back onto the current path), preferring edges no earlier tree
//! covered, then the busiest. The walk uses no randomness: the topology is the same for
//! every seed. Edges get a synthetic REST route (the graph has none).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::topology::{AttackPlan, Entry, Hop, Name, Topology};
use crate::error::DatasetError;

const NS: &str = "mesh";
const PORT: u16 = 8080;
const BUILTIN: &str = include_str!("../../data/jaeger-large-dependencies.tsv");
const MAX_DEPTH: usize = 5;
const MAX_HOPS: usize = 24;
/// Entry routes of one entry service, in the order its walks are made.
const ROUTES: [&str; 3] = [
    "GET /api/v1/SVC/view/{id}",
    "GET /api/v1/SVC/list",
    "POST /api/v1/SVC/update",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dep {
    parent: String,
    child: String,
    #[serde(default)]
    call_count: u64,
}

pub(crate) fn large_builtin() -> Result<Topology, DatasetError> {
    let mut deps = Vec::new();
    for (n, line) in BUILTIN.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut f = line.split('\t');
        let (Some(parent), Some(child), Some(count)) = (f.next(), f.next(), f.next()) else {
            return Err(DatasetError::BadFile {
                path: "data/jaeger-large-dependencies.tsv".into(),
                detail: format!("line {}", n + 1),
            });
        };
        deps.push(Dep {
            parent: parent.into(),
            child: child.into(),
            call_count: count.parse().unwrap_or(1),
        });
    }
    from_deps(deps, "jaeger-large".into()).map_err(|detail| DatasetError::BadFile {
        path: "data/jaeger-large-dependencies.tsv".into(),
        detail,
    })
}

pub(crate) fn large_from_file(path: &Path) -> Result<Topology, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))?;
    // Either the bare array or Jaeger's `{"data": [...]}` response.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| DatasetError::BadFile {
            path: path.into(),
            detail: e.to_string(),
        })?;
    let array = value.get("data").cloned().unwrap_or(value);
    let deps: Vec<Dep> = serde_json::from_value(array).map_err(|e| DatasetError::BadFile {
        path: path.into(),
        detail: format!("expected [{{parent, child, callCount}}]: {e}"),
    })?;
    if deps.is_empty() {
        return Err(DatasetError::BadFile {
            path: path.into(),
            detail: "no dependencies".into(),
        });
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("file")
        .to_string();
    from_deps(deps, format!("jaeger-file:{name}")).map_err(|detail| DatasetError::BadFile {
        path: path.into(),
        detail,
    })
}

/// A Kubernetes-style service name.
fn k8s_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(63);
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "svc".into()
    } else {
        trimmed.to_string()
    }
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

/// The synthetic route of an edge: one of three REST shapes on the callee's API.
fn edge_hop(caller: &str, callee: &str) -> Hop {
    let (method, path) = match fnv(&format!("{caller}>{callee}")) % 3 {
        0 => ("GET", format!("/api/v1/{callee}/items/{{id}}")),
        1 => ("POST", format!("/api/v1/{callee}/items")),
        _ => ("GET", format!("/api/v1/{callee}/search")),
    };
    hop(caller, callee, method, path)
}

fn hop(caller: &str, callee: &str, method: &'static str, path: String) -> Hop {
    Hop {
        caller: Cow::Owned(caller.to_string()),
        callee: Cow::Owned(callee.to_string()),
        port: PORT,
        method: Cow::Borrowed(method),
        path: Cow::Owned(path),
        db: None,
    }
}

struct Graph {
    /// parent → children, busiest first.
    children: BTreeMap<String, Vec<(String, u64)>>,
    in_degree: BTreeMap<String, usize>,
}

fn walk(
    g: &Graph,
    node: &str,
    depth: usize,
    path: &mut Vec<String>,
    covered: &mut HashSet<(String, String)>,
    seen: &mut HashSet<String>,
    hops: &mut Vec<Hop>,
) {
    if depth >= MAX_DEPTH {
        return;
    }
    let Some(children) = g.children.get(node) else {
        return;
    };
    let limit = if depth == 0 { 4 } else { 3 };
    let mut picked: Vec<&String> = Vec::new();
    for uncovered_pass in [true, false] {
        for (child, _) in children {
            if picked.len() >= limit {
                break;
            }
            let key = (node.to_string(), child.clone());
            if path.contains(child)
                || seen.contains(child)
                || picked.contains(&child)
                || (uncovered_pass == covered.contains(&key))
            {
                continue;
            }
            picked.push(child);
        }
    }
    for child in picked {
        if hops.len() >= MAX_HOPS {
            return;
        }
        covered.insert((node.to_string(), child.clone()));
        seen.insert(child.clone());
        hops.push(edge_hop(node, child));
        path.push(child.clone());
        walk(g, child, depth + 1, path, covered, seen, hops);
        path.pop();
    }
}

fn from_deps(deps: Vec<Dep>, name: String) -> Result<Topology, String> {
    let mut children: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut in_degree: BTreeMap<String, usize> = BTreeMap::new();
    let mut out_total: BTreeMap<String, u64> = BTreeMap::new();
    let mut edge_set = BTreeSet::new();
    for d in deps {
        let (p, c) = (k8s_name(&d.parent), k8s_name(&d.child));
        if p == c || !edge_set.insert((p.clone(), c.clone())) {
            continue;
        }
        children
            .entry(p.clone())
            .or_default()
            .push((c.clone(), d.call_count));
        *in_degree.entry(c).or_default() += 1;
        in_degree.entry(p.clone()).or_default();
        *out_total.entry(p).or_default() += d.call_count;
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    let g = Graph {
        children,
        in_degree,
    };
    let mut roots: Vec<&String> = g
        .in_degree
        .iter()
        .filter(|(s, d)| **d == 0 && g.children.contains_key(*s))
        .map(|(s, _)| s)
        .collect();
    if roots.is_empty() {
        // Every service is called by another (a cycle): enter at the busiest callers.
        roots = g.children.keys().take(8).collect();
    }
    roots.sort_by(|a, b| out_total[*b].cmp(&out_total[*a]).then_with(|| a.cmp(b)));
    let mut covered = HashSet::new();
    let mut entries = Vec::new();
    for root in &roots {
        // Up to three routes per entry service, while a walk still covers new edges.
        for route in ROUTES {
            let before = covered.len();
            let mut hops = Vec::new();
            let mut seen = HashSet::from([root.to_string()]);
            walk(
                &g,
                root,
                0,
                &mut vec![root.to_string()],
                &mut covered,
                &mut seen,
                &mut hops,
            );
            if hops.is_empty() || (covered.len() == before && route != ROUTES[0]) {
                break;
            }
            entries.push(Entry {
                service: Cow::Owned(root.to_string()),
                route: Cow::Owned(route.replace("SVC", root)),
                hops,
            });
        }
    }
    let called: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| &e.hops)
        .map(|h| h.callee.as_ref())
        .collect();
    if called.len() < 10 {
        return Err(format!(
            "the request trees reach {} called services; at least 10 are needed",
            called.len()
        ));
    }
    let plan = plan(&g, &entries);
    let first = entries[0].clone();
    // The busiest callees (by in-degree over the trees) host the job's calls.
    let tree_edges: BTreeSet<(String, String)> = entries
        .iter()
        .flat_map(|e| &e.hops)
        .map(|h| (h.caller.to_string(), h.callee.to_string()))
        .collect();
    let popular = by_in_degree(&tree_edges);
    let job_service = "batch-report-job";
    Ok(Topology {
        name,
        namespace: Cow::Borrowed(NS),
        rare: Entry {
            service: first.service.clone(),
            route: Cow::Owned(format!("POST /api/v1/{}/settings", first.service)),
            hops: vec![first.hops[0].clone()],
        },
        job: Entry {
            service: Cow::Borrowed(job_service),
            route: Cow::Borrowed("POST /jobs/report"),
            hops: vec![edge_hop(job_service, &popular[0])],
        },
        job_new_step: edge_hop(job_service, &popular[1]),
        entries,
        literal_entry_urls: false,
        plan: Some(plan),
    })
}

/// Services by how many distinct callers they have in the trees, most first.
fn by_in_degree(edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, c) in edges {
        *count.entry(c.as_str()).or_default() += 1;
    }
    let mut v: Vec<(&str, usize)> = count.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v.into_iter().map(|(s, _)| s.to_string()).collect()
}

fn plan(g: &Graph, entries: &[Entry]) -> AttackPlan {
    let edges: BTreeSet<(String, String)> = entries
        .iter()
        .flat_map(|e| &e.hops)
        .map(|h| (h.caller.to_string(), h.callee.to_string()))
        .collect();
    let popular = by_in_degree(&edges);
    let top: BTreeSet<&String> = popular.iter().take(8).collect();
    // How many entry routes each caller acts in, and its callees.
    let mut acts_in: BTreeMap<&str, usize> = BTreeMap::new();
    let mut callees: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in entries {
        let callers: BTreeSet<&str> = e.hops.iter().map(|h| h.caller.as_ref()).collect();
        for c in callers {
            *acts_in.entry(c).or_default() += 1;
        }
        for h in &e.hops {
            callees
                .entry(h.caller.as_ref())
                .or_default()
                .insert(h.callee.as_ref());
        }
    }
    // The compromised workload: a mid-tier service with a history of its own as a
    // caller (one or two callees, busiest such), like a real foothold; not an entry.
    let entry_services: BTreeSet<&str> = entries.iter().map(|e| e.service.as_ref()).collect();
    let compromised = acts_in
        .iter()
        .filter(|(s, _)| {
            callees[*s].len() <= 2
                && !entry_services.contains(*s)
                && !top.contains(&s.to_string())
                && g.in_degree.get(**s).is_some_and(|d| *d > 0)
        })
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| popular[popular.len() - 1].clone());
    let own_callees: BTreeSet<&str> = callees
        .get(compromised.as_str())
        .cloned()
        .unwrap_or_default();
    let targets: Vec<&String> = popular
        .iter()
        .filter(|s| **s != compromised && !own_callees.contains(s.as_str()))
        .collect();
    let known_route = |callee: &str| -> Hop {
        let caller = edges
            .iter()
            .find(|(_, c)| c == callee)
            .map(|(p, _)| p.as_str())
            .unwrap_or("");
        let mut h = edge_hop(caller, callee);
        h.caller = Cow::Owned(compromised.clone());
        h
    };
    let spoof_as: Name = Cow::Owned(
        edges
            .iter()
            .find(|(_, c)| c == targets[1])
            .map(|(p, _)| p.clone())
            .unwrap_or_default(),
    );
    let second = targets[2];
    let third = targets
        .iter()
        .skip(3)
        .find(|t| !edges.contains(&(second.clone(), (**t).clone())))
        .copied()
        .unwrap_or(targets[3]);
    let mut multi_b = known_route(third);
    multi_b.caller = Cow::Owned(second.clone());
    // New endpoint on the busiest edge (in the most entry routes), inside an entry that
    // uses it: the chain of known hops from the entry down to the caller, then the call.
    let mut edge_freq: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in entries {
        let own: BTreeSet<(&str, &str)> = e
            .hops
            .iter()
            .map(|h| (h.caller.as_ref(), h.callee.as_ref()))
            .collect();
        for k in own {
            *edge_freq.entry(k).or_default() += 1;
        }
    }
    let (&(p, c), _) = edge_freq
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .expect("trees have edges");
    let (entry, at) = entries
        .iter()
        .find_map(|e| {
            e.hops
                .iter()
                .position(|h| h.caller == p && h.callee == c)
                .map(|i| (e, i))
        })
        .expect("the edge is in a tree");
    let mut chain = Vec::new();
    let mut cur = p;
    for h in entry.hops[..at].iter().rev() {
        if cur == entry.service.as_ref() {
            break;
        }
        if h.callee == cur {
            chain.push(h.clone());
            cur = h.caller.as_ref();
        }
    }
    chain.reverse();
    let new_endpoint = hop(p, c, "GET", format!("/api/v1/{c}/export"));
    // Context anomaly: an entry's first callee making a call it makes in other trees,
    // never in this one.
    let mut context = None;
    'search: for e in entries {
        let own: BTreeSet<(&str, &str)> = e
            .hops
            .iter()
            .map(|h| (h.caller.as_ref(), h.callee.as_ref()))
            .collect();
        let x = &e.hops[0];
        for (p, c) in &edges {
            if *p == *x.callee && !own.contains(&(p.as_str(), c.as_str())) && *c != *e.service {
                context = Some((
                    e.service.clone(),
                    e.route.clone(),
                    vec![x.clone(), edge_hop(p, c)],
                ));
                break 'search;
            }
        }
    }
    AttackPlan {
        compromised: Cow::Owned(compromised.clone()),
        admin: hop(&compromised, targets[0], "GET", "/admin/config".into()),
        fan_out: targets[1..7]
            .iter()
            .map(|t| (Cow::Owned((*t).clone()), PORT))
            .collect(),
        probe_success: known_route(targets[0]),
        lateral: known_route(targets[1]),
        spoof_as,
        multi_hop: (known_route(second), multi_b),
        new_endpoint: (
            entry.service.clone(),
            entry.route.clone(),
            chain,
            new_endpoint,
        ),
        context,
        bulk_read: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_graph_gives_many_trees_over_most_services() {
        let t = large_builtin().unwrap();
        assert_eq!(t.name, "jaeger-large");
        let edges = t.edges();
        let services: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
        let roots: BTreeSet<&str> = t.entries.iter().map(|e| e.service.as_ref()).collect();
        eprintln!(
            "large: {} entry services, {} entry routes, {} services, {} edges",
            roots.len(),
            t.entries.len(),
            services.len(),
            edges.len()
        );
        // The 385 services nobody calls are the entry services.
        assert_eq!(roots.len(), 385);
        assert!(services.len() > 1000, "{} services", services.len());
        assert!(edges.len() > 2000, "{} edges", edges.len());
        let plan = t.plan.as_ref().unwrap();
        // A foothold with a history as a caller; everything it is made to call is new.
        assert!(edges.iter().any(|(a, _)| *a == *plan.compromised));
        for (t, _) in &plan.fan_out {
            assert!(!edges.contains(&(plan.compromised.to_string(), t.to_string())));
        }
        assert!(!edges.contains(&(plan.admin.caller.to_string(), plan.admin.callee.to_string())));
        let (_, _, chain, new) = &plan.new_endpoint;
        assert!(edges.contains(&(new.caller.to_string(), new.callee.to_string())));
        assert!(
            chain
                .iter()
                .all(|h| edges.contains(&(h.caller.to_string(), h.callee.to_string())))
        );
        assert!(plan.context.is_some());
        let (a, b) = &plan.multi_hop;
        assert!(!edges.contains(&(b.caller.to_string(), b.callee.to_string())));
        assert_eq!(a.callee, b.caller);
    }

    #[test]
    fn jaeger_json_file_loads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deps.json");
        let mut deps = Vec::new();
        for i in 0..12 {
            deps.push(
                serde_json::json!({"parent": "Front", "child": format!("S{i}"), "callCount": 10}),
            );
            deps.push(serde_json::json!({"parent": format!("S{i}"), "child": format!("S{}", (i + 1) % 12), "callCount": 3}));
        }
        std::fs::write(
            &p,
            serde_json::to_string(&serde_json::json!({ "data": deps })).unwrap(),
        )
        .unwrap();
        let t = large_from_file(&p).unwrap();
        assert_eq!(t.name, "jaeger-file:deps");
        assert!(t.entries.iter().all(|e| e.service == "front"));
        std::fs::write(&p, "[]").unwrap();
        assert!(large_from_file(&p).is_err());
    }
}
