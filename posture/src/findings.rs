//! The posture analysis: blast radius per workload under three policies (default-allow,
//! everything observed, least privilege = observed edges without open alerts), shared
//! service accounts, plaintext and anonymous callers, sensitive endpoints with many
//! callers, and edges leaving the mesh; ranked and explained with their numbers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use eastwest_detector::SensitivePattern;
use eastwest_model::Severity;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, Reversed};
use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::PostureError;
use crate::observe::{Observations, ObservedEndpoint};

/// Trace ids quoted per finding.
const MAX_EVIDENCE_TRACES: usize = 5;
/// Workloads named in one explanation before "and N more".
const MAX_NAMED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    BlastRadius,
    SharedServiceAccount,
    Plaintext,
    NoIdentity,
    SensitiveExposure,
    LeavesMesh,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub trace_ids: Vec<String>,
    /// The numbers the explanation quotes, by name.
    pub numbers: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// 1 = most urgent.
    pub rank: usize,
    pub kind: FindingKind,
    pub severity: Severity,
    /// Orders findings of one severity: larger is worse.
    pub score: f64,
    /// The workload, principal, endpoint or destination the finding is about.
    pub subject: String,
    pub explanation: String,
    pub evidence: Evidence,
}

/// What one workload reaches under one policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reach {
    pub workloads: usize,
    pub sensitive_endpoints: usize,
    /// Workloads reached plus the weights of the sensitive endpoints reached (the
    /// detector's pattern weights: cloud metadata 9, admin 6, metrics 3, …).
    pub score: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlastRadius {
    pub workload: String,
    /// Every mesh workload reachable directly, every sensitive endpoint callable.
    pub default_allow: Reach,
    /// Transitively over every observed edge, alerted ones included.
    pub observed: Reach,
    /// Transitively over observed edges without open alerts, each limited to its
    /// observed endpoints: what a least-privilege policy compiled from the baseline allows.
    pub least_privilege: Reach,
    /// `1 - least_privilege.score / default_allow.score`.
    pub cut: f64,
    /// `pattern destination METHOD route` of the sensitive endpoints reached under least
    /// privilege.
    pub sensitive_reached: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshSummary {
    pub workloads: usize,
    pub edges: usize,
    pub alerted_edges: usize,
    pub sensitive_endpoints: usize,
    /// Means over the workloads that call something.
    pub mean_default_allow: f64,
    pub mean_least_privilege: f64,
    pub mean_cut: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Posture {
    /// The period of history analysed (set by [`crate::posture`]).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub summary: MeshSummary,
    pub findings: Vec<Finding>,
    /// Callers only, largest least-privilege reach first.
    pub blast_radius: Vec<BlastRadius>,
}

/// The detector's sensitive patterns, compiled.
pub struct Sensitive(Vec<(String, Regex, f64)>);

impl Sensitive {
    pub fn new(patterns: &[SensitivePattern]) -> Result<Self, PostureError> {
        patterns
            .iter()
            .map(|p| {
                Regex::new(&p.pattern)
                    .map(|re| (p.name.clone(), re, p.weight))
                    .map_err(|source| PostureError::Pattern {
                        name: p.name.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The heaviest pattern on the route or the destination address, as the detector
    /// matches a call.
    pub fn matches(&self, e: &ObservedEndpoint) -> Option<(&str, f64)> {
        let mut best: Option<(&str, f64)> = None;
        for (name, re, w) in &self.0 {
            let hit = re.is_match(&e.route)
                || e.destination_address
                    .as_deref()
                    .is_some_and(|a| re.is_match(a));
            if hit && best.is_none_or(|(_, b)| *w > b) {
                best = Some((name, *w));
            }
        }
        best
    }
}

/// Where an edge leaving the mesh goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outside {
    Database,
    ExternalHost,
    BareIp,
}

impl Outside {
    fn as_str(self) -> &'static str {
        match self {
            Outside::Database => "database",
            Outside::ExternalHost => "external host",
            Outside::BareIp => "bare IP address",
        }
    }
}

fn is_ip(host: &str) -> bool {
    let host = host.trim_start_matches('[');
    let host = host.split(']').next().unwrap_or(host);
    host.parse::<IpAddr>().is_ok()
        || host
            .rsplit_once(':')
            .is_some_and(|(h, p)| p.parse::<u16>().is_ok() && h.parse::<IpAddr>().is_ok())
}

/// A sensitive (destination, method, route), with every observed caller's endpoint row.
struct Sens {
    name: String,
    weight: f64,
    /// Indexes into the endpoints; the first names it.
    endpoints: Vec<usize>,
}

fn label(e: &ObservedEndpoint, pattern: &str) -> String {
    format!("{pattern} {} {} {}", e.destination, e.method, e.route)
}

fn names(list: &BTreeSet<&str>) -> String {
    let named: Vec<&str> = list.iter().copied().take(MAX_NAMED).collect();
    let more = list.len().saturating_sub(MAX_NAMED);
    let mut text = named.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

fn traces<'a>(it: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in it {
        if out.len() == MAX_EVIDENCE_TRACES {
            break;
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}

fn numbers(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The analysis over one period's observations.
pub fn analyze(obs: &Observations, sensitive: &Sensitive) -> Posture {
    let eps = &obs.endpoints;
    let sources: BTreeSet<&str> = eps.iter().map(|e| e.source.as_str()).collect();
    // In the mesh: a workload that calls, or one with a namespace (a server the mesh
    // names). Others are virtual peers named from the client side: databases, hosts, IPs.
    let mut outside: BTreeMap<&str, Outside> = BTreeMap::new();
    for e in eps {
        let d = e.destination.as_str();
        if sources.contains(d)
            || e.destination_namespace
                .as_deref()
                .is_some_and(|n| !n.is_empty())
        {
            continue;
        }
        let host = e.destination_address.as_deref().unwrap_or("");
        let kind = if e.protocol == "db" {
            Outside::Database
        } else if is_ip(&e.destination_service) || is_ip(host) {
            Outside::BareIp
        } else {
            Outside::ExternalHost
        };
        let slot = outside.entry(d).or_insert(kind);
        *slot = (*slot).max(kind);
    }
    let mesh: BTreeSet<&str> = eps
        .iter()
        .flat_map(|e| [e.source.as_str(), e.destination.as_str()])
        .filter(|w| !outside.contains_key(w))
        .collect();
    let mut by_key: BTreeMap<(&str, &str, &str), Sens> = BTreeMap::new();
    for (i, e) in eps.iter().enumerate() {
        if let Some((name, weight)) = sensitive.matches(e) {
            let s = by_key
                .entry((e.destination.as_str(), e.method.as_str(), e.route.as_str()))
                .or_insert_with(|| Sens {
                    name: name.to_owned(),
                    weight,
                    endpoints: Vec::new(),
                });
            // A pattern on the address can differ by caller: the heaviest counts.
            if weight > s.weight {
                (s.name, s.weight) = (name.to_owned(), weight);
            }
            s.endpoints.push(i);
        }
    }
    let sens: Vec<Sens> = by_key.into_values().collect();

    let observed_edges: BTreeSet<(&str, &str)> = eps
        .iter()
        .map(|e| (e.source.as_str(), e.destination.as_str()))
        .collect();
    let lp_edges: BTreeSet<(&str, &str)> = observed_edges
        .iter()
        .copied()
        .filter(|(s, d)| {
            !obs.alerted_edges
                .contains(&((*s).to_owned(), (*d).to_owned()))
        })
        .collect();
    let observed_graph = Graph::new(&observed_edges);
    let lp_graph = Graph::new(&lp_edges);

    let mut radii = Vec::new();
    let mut findings = Vec::new();
    for &w in &sources {
        let default_allow = {
            let reached: Vec<&Sens> = sens
                .iter()
                .filter(|s| eps[s.endpoints[0]].destination != w)
                .collect();
            let workloads = mesh.iter().filter(|m| **m != w).count();
            Reach {
                workloads,
                sensitive_endpoints: reached.len(),
                score: workloads as f64 + reached.iter().map(|s| s.weight).sum::<f64>(),
            }
        };
        let (observed, _) = reach(w, &observed_graph, &observed_edges, &mesh, &sens, eps);
        let (least_privilege, reached) = reach(w, &lp_graph, &lp_edges, &mesh, &sens, eps);
        let cut = if default_allow.score > 0.0 {
            1.0 - least_privilege.score / default_allow.score
        } else {
            0.0
        };
        let sensitive_reached: Vec<String> = reached
            .iter()
            .map(|s| label(&eps[s.endpoints[0]], &s.name))
            .collect();
        let max_weight = reached.iter().map(|s| s.weight).fold(0.0, f64::max);
        let severity = if max_weight >= 9.0 {
            Severity::Critical
        } else if max_weight >= 6.0 {
            Severity::High
        } else if max_weight > 0.0 || least_privilege.workloads * 2 > mesh.len() {
            Severity::Medium
        } else if least_privilege.workloads > 1 {
            Severity::Low
        } else {
            Severity::Info
        };
        let extra = observed.workloads.saturating_sub(least_privilege.workloads);
        let mut explanation = format!(
            "{w} reaches {} of {} other workloads and {} sensitive endpoint(s) over observed, \
             non-alerted edges; a least-privilege policy cuts its blast radius from {} workloads \
             and {} sensitive endpoints (default-allow, score {:.0}) to score {:.0} (−{:.0} %)",
            least_privilege.workloads,
            default_allow.workloads,
            least_privilege.sensitive_endpoints,
            default_allow.workloads,
            default_allow.sensitive_endpoints,
            default_allow.score,
            least_privilege.score,
            100.0 * cut,
        );
        if extra > 0 {
            explanation.push_str(&format!(
                "; edges with open alerts would add {extra} more workload(s)"
            ));
        }
        explanation.push('.');
        let trace_ids = traces(
            reached
                .iter()
                .flat_map(|s| s.endpoints.iter().flat_map(|&i| &eps[i].trace_ids))
                .chain(
                    eps.iter()
                        .filter(|e| e.source == w)
                        .flat_map(|e| &e.trace_ids),
                ),
        );
        findings.push(Finding {
            rank: 0,
            kind: FindingKind::BlastRadius,
            severity,
            score: least_privilege.score,
            subject: w.to_owned(),
            explanation,
            evidence: Evidence {
                trace_ids,
                numbers: numbers(&[
                    ("default_allow_workloads", json!(default_allow.workloads)),
                    (
                        "default_allow_sensitive",
                        json!(default_allow.sensitive_endpoints),
                    ),
                    ("observed_workloads", json!(observed.workloads)),
                    (
                        "least_privilege_workloads",
                        json!(least_privilege.workloads),
                    ),
                    (
                        "least_privilege_sensitive",
                        json!(least_privilege.sensitive_endpoints),
                    ),
                    ("cut", json!(cut)),
                ]),
            },
        });
        radii.push(BlastRadius {
            workload: w.to_owned(),
            default_allow,
            observed,
            least_privilege,
            cut,
            sensitive_reached,
        });
    }

    findings.extend(shared_accounts(obs));
    findings.extend(plaintext_and_anonymous(eps, &mesh));
    findings.extend(exposure(eps, &sens, &lp_graph, &sources));
    findings.extend(leaving(eps, &outside));

    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.score.total_cmp(&a.score))
            .then(a.kind.cmp(&b.kind))
            .then(a.subject.cmp(&b.subject))
    });
    for (i, f) in findings.iter_mut().enumerate() {
        f.rank = i + 1;
    }
    radii.sort_by(|a, b| {
        b.least_privilege
            .score
            .total_cmp(&a.least_privilege.score)
            .then(a.workload.cmp(&b.workload))
    });
    let n = radii.len().max(1) as f64;
    let summary = MeshSummary {
        workloads: mesh.len(),
        edges: observed_edges.len(),
        alerted_edges: observed_edges.len() - lp_edges.len(),
        sensitive_endpoints: sens.len(),
        mean_default_allow: radii.iter().map(|r| r.default_allow.score).sum::<f64>() / n,
        mean_least_privilege: radii.iter().map(|r| r.least_privilege.score).sum::<f64>() / n,
        mean_cut: radii.iter().map(|r| r.cut).sum::<f64>() / n,
    };
    Posture {
        since: None,
        until: None,
        summary,
        findings,
        blast_radius: radii,
    }
}

/// A directed graph over workload keys.
struct Graph<'a> {
    graph: DiGraph<&'a str, ()>,
    index: HashMap<&'a str, NodeIndex>,
}

impl<'a> Graph<'a> {
    fn new(edges: &BTreeSet<(&'a str, &'a str)>) -> Self {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for (s, d) in edges {
            for k in [*s, *d] {
                index.entry(k).or_insert_with(|| graph.add_node(k));
            }
            graph.update_edge(index[s], index[d], ());
        }
        Self { graph, index }
    }

    /// Everything from which one of `targets` is reachable (targets included).
    fn ancestors(&self, targets: &BTreeSet<&str>) -> BTreeSet<&'a str> {
        let reversed = Reversed(&self.graph);
        let mut out = BTreeSet::new();
        for t in targets {
            let Some(&ix) = self.index.get(t) else {
                continue;
            };
            if out.contains(self.graph[ix]) {
                continue;
            }
            let mut bfs = Bfs::new(reversed, ix);
            while let Some(n) = bfs.next(reversed) {
                out.insert(self.graph[n]);
            }
        }
        out
    }

    /// `start` and everything reachable from it.
    fn closure(&self, start: &str) -> BTreeSet<&'a str> {
        let mut out = BTreeSet::new();
        if let Some(&ix) = self.index.get(start) {
            let mut bfs = Bfs::new(&self.graph, ix);
            while let Some(n) = bfs.next(&self.graph) {
                out.insert(self.graph[n]);
            }
        }
        out
    }
}

/// Mesh workloads reached from `w` (itself excluded), and the sensitive endpoints whose
/// caller `w` is or reaches, over an allowed edge.
fn reach<'s>(
    w: &str,
    graph: &Graph<'_>,
    allowed: &BTreeSet<(&str, &str)>,
    mesh: &BTreeSet<&str>,
    sens: &'s [Sens],
    eps: &[ObservedEndpoint],
) -> (Reach, Vec<&'s Sens>) {
    let closure = graph.closure(w);
    let workloads = closure
        .iter()
        .filter(|k| **k != w && mesh.contains(*k))
        .count();
    let reached: Vec<&Sens> = sens
        .iter()
        .filter(|s| {
            s.endpoints.iter().any(|&i| {
                let e = &eps[i];
                e.destination != w
                    && closure.contains(e.source.as_str())
                    && allowed.contains(&(e.source.as_str(), e.destination.as_str()))
            })
        })
        .collect();
    let score = workloads as f64 + reached.iter().map(|s| s.weight).sum::<f64>();
    (
        Reach {
            workloads,
            sensitive_endpoints: reached.len(),
            score,
        },
        reached,
    )
}

fn shared_accounts(obs: &Observations) -> Vec<Finding> {
    let mut by_principal: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for p in &obs.principals {
        *by_principal
            .entry(p.principal.as_str())
            .or_default()
            .entry(p.workload.as_str())
            .or_default() += p.calls;
    }
    let mut out = Vec::new();
    for (principal, workloads) in by_principal {
        if workloads.len() < 2 {
            continue;
        }
        let set: BTreeSet<&str> = workloads.keys().copied().collect();
        let calls: u64 = workloads.values().sum();
        let trace_ids = traces(
            obs.endpoints
                .iter()
                .filter(|e| set.contains(e.source.as_str()) || set.contains(e.destination.as_str()))
                .flat_map(|e| &e.trace_ids),
        );
        out.push(Finding {
            rank: 0,
            kind: FindingKind::SharedServiceAccount,
            severity: if set.len() >= 3 {
                Severity::High
            } else {
                Severity::Medium
            },
            score: set.len() as f64,
            subject: principal.to_owned(),
            explanation: format!(
                "principal {principal} is used by {} workloads ({}) on {calls} calls: a policy \
                 that allows this identity allows all of them, and one compromised workload \
                 speaks for the others.",
                set.len(),
                names(&set)
            ),
            evidence: Evidence {
                trace_ids,
                numbers: numbers(&[("workloads", json!(set.len())), ("calls", json!(calls))]),
            },
        });
    }
    out
}

fn plaintext_and_anonymous(eps: &[ObservedEndpoint], mesh: &BTreeSet<&str>) -> Vec<Finding> {
    #[derive(Default)]
    struct Totals<'a> {
        calls: u64,
        plaintext: u64,
        anonymous: u64,
        inside: u64,
        plaintext_to: BTreeSet<&'a str>,
        plaintext_traces: Vec<&'a String>,
        traces: Vec<&'a String>,
    }
    let mut by_source: BTreeMap<&str, Totals> = BTreeMap::new();
    for e in eps {
        let t = by_source.entry(e.source.as_str()).or_default();
        t.calls += e.calls;
        t.plaintext += e.plaintext_calls;
        // A caller's principal is what the callee's proxy saw: outside the mesh there is
        // none to see it, so only calls inside the mesh say a caller has no identity.
        if mesh.contains(e.destination.as_str()) {
            t.anonymous += e.anonymous_calls;
            t.inside += e.calls;
        }
        if e.plaintext_calls > 0 {
            t.plaintext_to.insert(e.destination.as_str());
            t.plaintext_traces.extend(&e.plaintext_trace_ids);
        }
        t.traces.extend(&e.trace_ids);
    }
    let mut out = Vec::new();
    for (w, t) in by_source {
        if !mesh.contains(w) {
            continue;
        }
        if t.plaintext > 0 {
            let share = pct(t.plaintext as f64, t.calls as f64);
            out.push(Finding {
                rank: 0,
                kind: FindingKind::Plaintext,
                severity: if share >= 50.0 { Severity::High } else { Severity::Medium },
                score: share,
                subject: w.to_owned(),
                explanation: format!(
                    "{w} made {} of its {} calls ({share:.1} %) in plaintext, to {} destination(s) ({}).",
                    t.plaintext,
                    t.calls,
                    t.plaintext_to.len(),
                    names(&t.plaintext_to)
                ),
                evidence: Evidence {
                    trace_ids: traces(t.plaintext_traces),
                    numbers: numbers(&[
                        ("plaintext_calls", json!(t.plaintext)),
                        ("calls", json!(t.calls)),
                    ]),
                },
            });
        }
        if t.anonymous > 0 {
            let share = pct(t.anonymous as f64, t.inside as f64);
            out.push(Finding {
                rank: 0,
                kind: FindingKind::NoIdentity,
                severity: if share >= 100.0 {
                    Severity::Medium
                } else {
                    Severity::Low
                },
                score: share,
                subject: w.to_owned(),
                explanation: format!(
                    "{w} presented no identity (principal) on {} of its {} calls inside the \
                     mesh ({share:.1} %): no identity-based policy can tell it from any other caller.",
                    t.anonymous, t.inside
                ),
                evidence: Evidence {
                    trace_ids: traces(t.traces),
                    numbers: numbers(&[
                        ("anonymous_calls", json!(t.anonymous)),
                        ("calls_inside_mesh", json!(t.inside)),
                    ]),
                },
            });
        }
    }
    out
}

fn exposure(
    eps: &[ObservedEndpoint],
    sens: &[Sens],
    lp_graph: &Graph<'_>,
    sources: &BTreeSet<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sens {
        let first = &eps[s.endpoints[0]];
        let (dst, method, route) = (
            first.destination.as_str(),
            first.method.as_str(),
            first.route.as_str(),
        );
        let callers: BTreeSet<&str> = s
            .endpoints
            .iter()
            .map(|&i| eps[i].source.as_str())
            .collect();
        // Callers and every workload that reaches one: one walk up the edges per
        // endpoint, not one walk down per workload.
        let reaching: BTreeSet<&str> = lp_graph
            .ancestors(&callers)
            .into_iter()
            .chain(callers.iter().copied())
            .filter(|w| *w != dst && sources.contains(w))
            .collect();
        let (weight, pattern) = (s.weight, &s.name);
        let calls: u64 = s.endpoints.iter().map(|&i| eps[i].calls).sum();
        let severity = match (callers.len(), weight >= 9.0) {
            (n, true) if n >= 2 => Severity::Critical,
            (_, true) => Severity::High,
            (n, _) if n >= 3 => Severity::High,
            (2, _) => Severity::Medium,
            _ => Severity::Low,
        };
        out.push(Finding {
            rank: 0,
            kind: FindingKind::SensitiveExposure,
            severity,
            score: weight * (callers.len() as f64 + reaching.len() as f64 / 2.0),
            subject: format!("{dst} {method} {route}"),
            explanation: format!(
                "{pattern} endpoint {method} {route} on {dst} is called directly by {} workload(s) \
                 ({}) on {calls} calls and reachable from {} workload(s) over observed edges.",
                callers.len(),
                names(&callers),
                reaching.len()
            ),
            evidence: Evidence {
                trace_ids: traces(s.endpoints.iter().flat_map(|&i| &eps[i].trace_ids)),
                numbers: numbers(&[
                    ("pattern_weight", json!(weight)),
                    ("direct_callers", json!(callers.len())),
                    ("reaching_workloads", json!(reaching.len())),
                    ("calls", json!(calls)),
                ]),
            },
        });
    }
    out
}

fn leaving(eps: &[ObservedEndpoint], outside: &BTreeMap<&str, Outside>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (&dst, &kind) in outside {
        let to: Vec<&ObservedEndpoint> = eps.iter().filter(|e| e.destination == dst).collect();
        let callers: BTreeSet<&str> = to.iter().map(|e| e.source.as_str()).collect();
        let calls: u64 = to.iter().map(|e| e.calls).sum();
        let plaintext: u64 = to.iter().map(|e| e.plaintext_calls).sum();
        let address = to.iter().find_map(|e| e.destination_address.as_deref());
        let severity = match kind {
            Outside::BareIp => Severity::High,
            Outside::ExternalHost => Severity::Medium,
            Outside::Database => Severity::Low,
        };
        let mut explanation = format!(
            "{} workload(s) ({}) call {dst}, a {} outside the mesh, on {calls} calls",
            callers.len(),
            names(&callers),
            kind.as_str()
        );
        if let Some(a) = address {
            explanation.push_str(&format!(" (address {a})"));
        }
        if plaintext > 0 {
            explanation.push_str(&format!(", {plaintext} of them in plaintext"));
        }
        explanation.push('.');
        out.push(Finding {
            rank: 0,
            kind: FindingKind::LeavesMesh,
            severity,
            score: callers.len() as f64,
            subject: dst.to_owned(),
            explanation,
            evidence: Evidence {
                trace_ids: traces(to.iter().flat_map(|e| &e.trace_ids)),
                numbers: numbers(&[
                    ("callers", json!(callers.len())),
                    ("calls", json!(calls)),
                    ("plaintext_calls", json!(plaintext)),
                    ("kind", json!(kind)),
                ]),
            },
        });
    }
    out
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
