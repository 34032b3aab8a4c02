//! Per-call detectors: each looks a call up in the baseline and, when it is surprising,
//! returns a finding that carries its numbers.

use eastwest_baseline::{EdgeKey, EndpointKey, LookupIndex};
use eastwest_model::{AlertKind, Call};
use regex::Regex;
use serde_json::{Map, Value, json};

use crate::config::DetectorConfig;
use crate::score::{p_novel, p_rare_upper, surprise};

#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: AlertKind,
    pub score: f64,
    /// Extra severity from a sensitive target.
    pub sensitive: bool,
    pub evidence: Map<String, Value>,
    pub summary: String,
}

pub struct Detectors {
    sensitive: Vec<(String, Regex, f64)>,
}

fn ev(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl Detectors {
    pub fn new(config: &DetectorConfig) -> Self {
        let sensitive = config
            .sensitive
            .iter()
            .filter_map(|p| Some((p.name.clone(), Regex::new(&p.pattern).ok()?, p.weight)))
            .collect();
        Self { sensitive }
    }

    fn sensitive_match(&self, call: &Call) -> Option<(&str, f64)> {
        self.sensitive
            .iter()
            .filter(|(_, re, _)| {
                re.is_match(&call.route)
                    || call
                        .destination_address
                        .as_deref()
                        .is_some_and(|a| re.is_match(a))
            })
            .map(|(name, _, w)| (name.as_str(), *w))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn evaluate(
        &self,
        call: &Call,
        index: &LookupIndex,
        config: &DetectorConfig,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let (src, dst) = call.edge_key();
        let edge = EdgeKey {
            source: src.clone(),
            destination: dst.clone(),
        };
        let endpoint = EndpointKey {
            edge: edge.clone(),
            method: call.method.clone(),
            route: call.route.clone(),
        };
        let source = index.source(&src);
        let edge_stats = index.edge(&edge);
        let endpoint_known = index.endpoint(&endpoint).is_some();
        let what = format!("{} {}", call.method, call.route);

        let mut novelty = 0.0;
        match edge_stats {
            None => {
                let (callees, calls) = source
                    .map(|s| (s.callees.len() as f64, s.calls))
                    .unwrap_or((0.0, 0.0));
                let p = p_novel(callees, calls);
                novelty = surprise(p);
                out.push(Finding {
                    kind: AlertKind::NewEdge,
                    score: novelty,
                    sensitive: false,
                    evidence: ev(&[("baseline_callees", json!(callees)), ("baseline_source_calls", json!(calls)), ("p_new_callee", json!(p))]),
                    summary: format!(
                        "{src} called {dst} ({what}) for the first time; in the baseline it called {callees} services over {calls:.0} calls (p of a new callee ≈ {p:.2e})"
                    ),
                });
            }
            Some(e) if !endpoint_known => {
                let endpoints = index.endpoints_on_edge(&edge) as f64;
                let p = p_novel(endpoints, e.calls);
                novelty = surprise(p);
                let overflow = call.route == "{overflow}";
                out.push(Finding {
                    kind: AlertKind::NewEndpoint,
                    score: if overflow { novelty.max(config.min_score + 2.0) } else { novelty },
                    sensitive: overflow,
                    evidence: ev(&[("baseline_endpoints", json!(endpoints)), ("baseline_edge_calls", json!(e.calls)), ("p_new_endpoint", json!(p)), ("route_overflow", json!(overflow))]),
                    summary: if overflow {
                        format!("{src} called so many distinct routes on {dst} that the per-edge route cap overflowed (route cardinality attack or scan)")
                    } else {
                        format!("{src} called {dst} {what}, an endpoint never seen on this edge; the edge had {endpoints} endpoints over {:.0} calls (p ≈ {p:.2e})", e.calls)
                    },
                });
            }
            Some(_) => {}
        }

        if let Some((name, weight)) = self.sensitive_match(call) {
            let known_calls = index.endpoint(&endpoint).map(|s| s.calls).unwrap_or(0.0);
            // Sensitive calls that were routine in the baseline are not findings.
            if known_calls < 1.0 {
                out.push(Finding {
                    kind: AlertKind::SensitiveEndpoint,
                    score: weight + novelty,
                    sensitive: true,
                    evidence: ev(&[("pattern", json!(name)), ("pattern_weight", json!(weight)), ("novelty", json!(novelty)), ("destination_address", json!(call.destination_address))]),
                    summary: format!("{src} called {name} endpoint {what} on {dst}, never called on this edge in the baseline (score {weight:.1} for {name} + {novelty:.1} novelty)"),
                });
            }
        }

        if let (Some(entry), Some(_)) = (&call.entry, edge_stats)
            && let Some(entry_calls) = index.entry_calls(entry)
            && entry_calls >= config.min_entry_calls
            && index.edge_context(entry, &edge).is_none()
        {
            let p = p_rare_upper(0.0, entry_calls);
            out.push(Finding {
                kind: AlertKind::ContextAnomaly,
                score: surprise(p),
                sensitive: false,
                evidence: ev(&[("entry_calls", json!(entry_calls)), ("p_upper", json!(p))]),
                summary: format!(
                    "{src} → {dst} ({what}) happened inside request {} {}, which never reached this edge in {entry_calls:.0} baseline calls",
                    entry.service, entry.route
                ),
            });
        }

        if call.mtls == Some(false) {
            let (mtls, plain, scope) = match edge_stats {
                Some(e) if e.mtls_calls + e.plaintext_calls > 0.0 => {
                    (e.mtls_calls, e.plaintext_calls, "edge")
                }
                _ => index
                    .identity(&src)
                    .map(|i| (i.mtls_calls, i.plaintext_calls, "workload"))
                    .unwrap_or((0.0, 0.0, "workload")),
            };
            if mtls + plain >= config.min_mtls_calls && mtls > plain {
                let p = p_rare_upper(plain, mtls + plain);
                out.push(Finding {
                    kind: AlertKind::Plaintext,
                    score: surprise(p),
                    sensitive: true,
                    evidence: ev(&[("baseline_mtls_calls", json!(mtls)), ("baseline_plaintext_calls", json!(plain)), ("scope", json!(scope))]),
                    summary: format!("{src} called {dst} {what} without mTLS; this {scope} used mTLS on {mtls:.0} of {:.0} baseline calls", mtls + plain),
                });
            }
        }

        if let Some(principal) = &call.source.principal
            && let Some(id) = index.identity(&src)
            && !id.principals.is_empty()
            && !id.principals.contains_key(principal)
        {
            let seen: f64 = id.principals.values().sum();
            let others = index
                .principal_workloads(principal)
                .map(|w| w.len())
                .unwrap_or(0);
            let p = p_rare_upper(0.0, seen);
            out.push(Finding {
                kind: AlertKind::IdentityMismatch,
                score: surprise(p) + if others > 0 { 2.0 } else { 0.0 },
                sensitive: true,
                evidence: ev(&[("principal", json!(principal)), ("baseline_principals", json!(id.principals.keys().collect::<Vec<_>>())), ("principal_known_for_workloads", json!(others))]),
                summary: format!(
                    "{src} presented identity {principal}, never seen for it in {seen:.0} baseline calls{}",
                    if others > 0 { format!("; that identity belongs to {others} other workload(s)") } else { String::new() }
                ),
            });
        }
        out
    }
}
