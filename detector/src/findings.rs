//! Per-call detectors: each looks a call up in the baseline and, when it is surprising,
//! returns a finding that carries its numbers.

use eastwest_baseline::{CallKeys, LookupIndex};
use eastwest_model::{AlertKind, Call, Workload};
use regex::{Regex, RegexSet};
use serde_json::{Map, Value, json};

use crate::config::DetectorConfig;
use crate::score::{p_novel, p_rare_upper, surprise};

/// Route the collector substitutes once an edge's distinct-route cap is hit.
pub const OVERFLOW_ROUTE: &str = "{overflow}";

/// One surprising observation, before dedup into an alert.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: AlertKind,
    pub score: f64,
    /// Extra severity from a sensitive target or a security property (mTLS, identity).
    pub sensitive: bool,
    pub evidence: Map<String, Value>,
    pub summary: String,
    /// Alert key beyond kind and source: `None` for per-source findings (fan-out, probing).
    pub destination: Option<Workload>,
    pub method: Option<String>,
    pub route: Option<String>,
    /// Set for a rollout notice: the caller's new version. The alert book keeps one alert
    /// per source and version (severity info), replacing its evidence on every update.
    pub rollout: Option<String>,
}

impl Finding {
    pub(crate) fn on_call(kind: AlertKind, call: &Call, score: f64, sensitive: bool) -> Self {
        Self {
            kind,
            score,
            sensitive,
            evidence: Map::new(),
            summary: String::new(),
            destination: Some(call.destination.clone()),
            method: Some(call.method.to_string()),
            route: Some(call.route.to_string()),
            rollout: None,
        }
    }

    pub(crate) fn with(mut self, evidence: &[(&str, Value)], summary: String) -> Self {
        self.evidence = ev(evidence);
        self.summary = summary;
        self
    }
}

pub(crate) fn ev(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `spiffe://TRUST_DOMAIN/ns/NS/sa/SA` → (NS, SA).
pub fn spiffe_ns_sa(principal: &str) -> Option<(&str, &str)> {
    let rest = principal.strip_prefix("spiffe://")?;
    let path = rest.split_once('/')?.1;
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("ns"), Some(ns), Some("sa"), Some(sa)) if !ns.is_empty() => Some((ns, sa)),
        _ => None,
    }
}

pub struct Detectors {
    sensitive_set: RegexSet,
    sensitive: Vec<(String, Regex, f64)>,
}

impl Detectors {
    pub fn new(config: &DetectorConfig) -> Self {
        let sensitive: Vec<(String, Regex, f64)> = config
            .sensitive
            .iter()
            .filter_map(|p| Some((p.name.clone(), Regex::new(&p.pattern).ok()?, p.weight)))
            .collect();
        let sensitive_set = RegexSet::new(sensitive.iter().map(|(_, re, _)| re.as_str()))
            .unwrap_or_else(|_| RegexSet::empty());
        Self {
            sensitive_set,
            sensitive,
        }
    }

    /// The heaviest sensitive pattern matching the route or the destination address;
    /// of equal weights, the first on the route (what was asked is more telling than
    /// where: an RBAC self-review names more than "the API server").
    pub fn sensitive_match(&self, call: &Call) -> Option<(&str, f64)> {
        let mut hits: Vec<usize> = self
            .sensitive_set
            .matches(&call.route)
            .into_iter()
            .collect();
        if let Some(addr) = call.destination_address.as_deref() {
            hits.extend(self.sensitive_set.matches(addr).iter());
        }
        let mut best: Option<(&str, f64)> = None;
        for (name, _, w) in hits.into_iter().filter_map(|i| self.sensitive.get(i)) {
            if best.is_none_or(|(_, b)| *w > b) {
                best = Some((name.as_str(), *w));
            }
        }
        best
    }

    /// Findings on one call; `src` and `dst` are its workload keys (`Call::edge_key`)
    /// and `keys` its keys in `index` (`LookupIndex::call_keys`), resolved once per call
    /// by the engine.
    pub fn evaluate(
        &self,
        call: &Call,
        (src, dst): (&str, &str),
        keys: &CallKeys,
        index: &LookupIndex,
        config: &DetectorConfig,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let stats = index.call_stats(keys);
        let (edge_stats, endpoint_stats) = (stats.edge, stats.endpoint);
        let what = MethodRoute(call);

        let mut novelty = 0.0;
        match edge_stats {
            None => {
                let f = crate::new_edge::finding(call, (src, dst), keys, index, config);
                novelty = f.score;
                out.push(f);
            }
            Some(e) if endpoint_stats.is_none() => {
                let endpoints = keys.edge.map_or(0, |k| index.endpoints_on_edge(k)) as f64;
                let p = p_novel(endpoints, e.calls);
                novelty = surprise(p);
                let overflow = call.route == OVERFLOW_ROUTE;
                let score = if overflow {
                    novelty.max(config.overflow_score)
                } else {
                    novelty
                };
                let summary = if overflow {
                    format!(
                        "{src} called so many distinct routes on {dst} that the collector's per-edge route cap overflowed (route cardinality attack or scan; score {score:.1})"
                    )
                } else {
                    format!(
                        "{src} called {dst} {what}, an endpoint never seen on this edge; the edge had {endpoints} endpoints over {:.0} calls (p ≈ {p:.2e}, score {score:.1})",
                        e.calls
                    )
                };
                out.push(
                    Finding::on_call(AlertKind::NewEndpoint, call, score, overflow).with(
                        &[
                            ("baseline_endpoints", json!(endpoints)),
                            ("baseline_edge_calls", json!(e.calls)),
                            ("p_new_endpoint", json!(p)),
                            ("route_overflow", json!(overflow)),
                        ],
                        summary,
                    ),
                );
            }
            Some(_) => {}
        }

        // Sensitive calls that were routine in the baseline are not findings; the regex
        // set only runs for endpoints the baseline does not know (keeps the hot path cheap).
        if endpoint_stats.is_none()
            && let Some((name, weight)) = self.sensitive_match(call)
        {
            let score = weight + novelty;
            out.push(Finding::on_call(AlertKind::SensitiveEndpoint, call, score, true).with(
                &[("pattern", json!(name)), ("pattern_weight", json!(weight)), ("novelty", json!(novelty)), ("destination_address", json!(call.destination_address))],
                format!("{src} called {name} endpoint {what} on {dst}, never called on this edge in the baseline (score {score:.1} = {weight:.1} for {name} + {novelty:.1} novelty)"),
            ));
        }

        // An endpoint known under the entry implies its edge is known under it too.
        if let (Some(entry), Some(entry_key), Some(edge_key)) = (&call.entry, keys.entry, keys.edge)
            && let Some(entry_calls) = stats.entry_calls
            && entry_calls >= config.min_entry_calls
            && stats.endpoint_context.is_none()
        {
            let finding = match (index.edge_context(entry_key, edge_key), endpoint_stats) {
                (None, _) => {
                    let p = p_rare_upper(0.0, entry_calls);
                    Some((p, "edge", entry_calls, 0.0))
                }
                // Known edge under this entry, but this endpoint never under it: only as
                // surprising as the endpoint is common on the edge.
                (Some(ctx), Some(ep)) => {
                    let share = edge_stats
                        .map(|e| ep.calls / e.calls.max(1.0))
                        .unwrap_or(1.0);
                    let p = p_rare_upper(0.0, ctx.calls).max(share);
                    Some((p, "endpoint", ctx.calls, share))
                }
                _ => None,
            };
            let new_edge = out.iter_mut().find(|f| f.kind == AlertKind::NewEdge);
            if let (Some(f), Some((p, "edge", n, _))) = (new_edge, finding) {
                // A new edge is new under every request too: one alert says both, as
                // surprising as the stronger of the two.
                let context_score = surprise(p);
                f.score = f.score.max(context_score);
                f.evidence.insert("entry_calls".into(), json!(n));
                f.evidence.insert("p_context_upper".into(), json!(p));
                f.summary.push_str(&format!(
                    "; inside request {} {}, which never reached {dst} in {n:.0} baseline calls (p ≤ {p:.2e}, score {context_score:.1})",
                    entry.service, entry.route
                ));
            } else if let Some((p, scope, n, share)) = finding {
                let score = surprise(p);
                out.push(Finding::on_call(AlertKind::ContextAnomaly, call, score, false).with(
                    &[("scope", json!(scope)), ("entry_calls", json!(entry_calls)), ("context_calls", json!(n)), ("endpoint_share_on_edge", json!(share)), ("p_upper", json!(p))],
                    format!(
                        "{src} → {dst} ({what}) happened inside request {} {}, which never reached this {scope} in {n:.0} baseline calls (p ≤ {p:.2e}, score {score:.1})",
                        entry.service, entry.route
                    ),
                ));
            }
        }

        // A request entering at a workload the baseline only ever saw called from inside
        // the mesh, judged on that workload's own calls out (the rest of the request tree
        // follows from them).
        if let Some(entry) = &call.entry
            && stats.entry_calls.is_none()
            && entry.service == call.source.service
            && let Some(f) = unknown_entry(call, entry, (src, dst), index, config)
        {
            out.push(f);
        }

        if call.mtls == Some(false)
            && let Some(tls) = plaintext_evidence(edge_stats, keys.source, dst, index, config)
        {
            let (mtls, plain) = (tls.mtls_calls, tls.plaintext_calls);
            let score = surprise(tls.p);
            let whose = match tls.scope {
                "edge" => "this edge".to_owned(),
                "workload" => format!("{src}'s calls"),
                _ => format!("calls into {dst}"),
            };
            out.push(Finding::on_call(AlertKind::Plaintext, call, score, true).with(
                &[("baseline_mtls_calls", json!(mtls)), ("baseline_plaintext_calls", json!(plain)), ("scope", json!(tls.scope)), ("p_upper", json!(tls.p))],
                format!("{src} called {dst} {what} without mTLS; {whose} used mTLS on {mtls:.0} of {:.0} baseline calls (score {score:.1})", mtls + plain),
            ));
        }

        if let Some(f) = identity_finding(call, src, keys.source, index, config) {
            out.push(f);
        }
        out
    }
}

/// The finding for a call out of a request whose entry is a workload that received
/// calls in the baseline but never started a request: as surprising as none of its
/// `received` calls having been an entry.
fn unknown_entry(
    call: &Call,
    entry: &eastwest_model::Entry,
    (src, dst): (&str, &str),
    index: &LookupIndex,
    config: &DetectorConfig,
) -> Option<Finding> {
    let id = index.names().workload(&call.source)?;
    let received = index.received_calls(id);
    let service_id = index.id(&entry.service);
    if received < config.min_entry_calls || service_id.is_some_and(|s| index.is_entry_service(s)) {
        return None;
    }
    let p = p_rare_upper(0.0, received);
    let score = surprise(p);
    Some(
        Finding::on_call(AlertKind::ContextAnomaly, call, score, false).with(
            &[
                ("scope", json!("entry")),
                ("entry_service_received_calls", json!(received)),
                ("p_upper", json!(p)),
            ],
            format!(
                "{src} → {dst} ({}) is part of a request that entered the mesh at {src} ({} {}); in the baseline {src} received {received:.0} calls from inside the mesh and never started a request (p ≤ {p:.2e}, score {score:.1})",
                MethodRoute(call),
                entry.service,
                entry.route
            ),
        ),
    )
}

/// Baseline mTLS counts that make a plaintext call surprising.
struct TlsEvidence {
    scope: &'static str,
    mtls_calls: f64,
    plaintext_calls: f64,
    p: f64,
}

/// The edge's own calls when it has any with known mTLS status; on a new edge, the
/// stronger of the caller's calls and the callee's inbound calls (a callee that only ever
/// received mTLS called in plaintext is a caller outside the mesh, whatever that caller
/// did before). `None` when no scope used mTLS on most of enough calls.
fn plaintext_evidence(
    edge: Option<&eastwest_baseline::EdgeStats>,
    source: Option<eastwest_baseline::NameId>,
    destination: &str,
    index: &LookupIndex,
    config: &DetectorConfig,
) -> Option<TlsEvidence> {
    let judge = |scope, mtls_calls: f64, plaintext_calls: f64| {
        let known = mtls_calls + plaintext_calls;
        (known >= config.min_mtls_calls && mtls_calls > plaintext_calls).then(|| TlsEvidence {
            scope,
            mtls_calls,
            plaintext_calls,
            p: p_rare_upper(plaintext_calls, known),
        })
    };
    if let Some(e) = edge.filter(|e| e.mtls_calls + e.plaintext_calls > 0.0) {
        return judge("edge", e.mtls_calls, e.plaintext_calls);
    }
    let caller = source
        .and_then(|s| index.identity(s))
        .and_then(|i| judge("workload", i.mtls_calls, i.plaintext_calls));
    let callee = index
        .id(destination)
        .and_then(|d| index.inbound_tls(d))
        .and_then(|t| judge("destination", t.mtls_calls, t.plaintext_calls));
    match (caller, callee) {
        (Some(a), Some(b)) => Some(if b.p < a.p { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A principal whose SPIFFE namespace contradicts the claimed one, or one never seen for
/// this workload (worse when it belongs to other workloads: one identity speaking for
/// several services).
fn identity_finding(
    call: &Call,
    src: &str,
    src_id: Option<eastwest_baseline::NameId>,
    index: &LookupIndex,
    config: &DetectorConfig,
) -> Option<Finding> {
    let principal = call.source.principal.as_deref()?;
    let claimed_ns = call.source.namespace.as_deref().filter(|n| !n.is_empty());
    let ns_conflict = match (spiffe_ns_sa(principal), claimed_ns) {
        (Some((ns, _)), Some(claimed)) if ns != claimed => Some(ns),
        _ => None,
    };
    let id = src_id.and_then(|s| index.identity(s));
    let own_principals = id.filter(|i| !i.principals.is_empty());
    let principal_id = index.id(principal);
    let (unseen, seen) = match own_principals {
        Some(i) => (
            !principal_id.is_some_and(|p| i.principals.contains_key(&p)),
            i.principals.values().sum(),
        ),
        // A known caller that never presented an identity, now presenting one another
        // workload presents: its own first mTLS call would carry its own identity.
        None => {
            let calls = src_id
                .and_then(|s| index.source(s))
                .map_or(0.0, |s| s.calls);
            let borrowed = index
                .principal_workloads(principal)
                .is_some_and(|w| w.iter().any(|k| Some(*k) != src_id));
            (calls > 0.0 && borrowed, calls)
        }
    };
    // The callee saw one identity on the connection; the caller's own span claimed
    // another: one of them lies, and the callee's is the one a certificate backs.
    let claim_conflict = call
        .claimed_principal
        .as_deref()
        .filter(|claimed| *claimed != principal);
    if ns_conflict.is_none() && claim_conflict.is_none() && !unseen {
        return None;
    }
    let others: Vec<String> = index
        .principal_workloads(principal)
        .map(|w| {
            let mut v: Vec<String> = w
                .iter()
                .map(|k| index.name(*k))
                .filter(|k| *k != src)
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let p = if unseen { p_rare_upper(0.0, seen) } else { 1.0 };
    let ns_weight = if ns_conflict.is_some() || claim_conflict.is_some() {
        config.identity_namespace_weight
    } else {
        0.0
    };
    // −ln ½: an identity that already belongs to other workloads halves the benign odds.
    let borrowed = if others.is_empty() {
        0.0
    } else {
        std::f64::consts::LN_2 * 2.0
    };
    let score = surprise(p) + ns_weight + borrowed;
    let mut summary = format!("{src} presented identity {principal}");
    if let Some(ns) = ns_conflict {
        summary.push_str(&format!(
            ", whose SPIFFE namespace {ns} is not the claimed namespace {}",
            claimed_ns.unwrap_or("")
        ));
    }
    if let Some(claimed) = claim_conflict {
        summary.push_str(&format!(
            " to its callee, while its own span claimed {claimed}"
        ));
    }
    if unseen && own_principals.is_none() {
        summary.push_str(&format!(
            ", having presented none in {seen:.0} baseline calls"
        ));
    } else if unseen {
        summary.push_str(&format!(", never seen for it in {seen:.0} baseline calls"));
    }
    if !others.is_empty() {
        summary.push_str(&format!(
            "; that identity speaks for {} other workload(s): {}",
            others.len(),
            others.join(", ")
        ));
    }
    summary.push_str(&format!(" (score {score:.1})"));
    Some(
        Finding::on_call(AlertKind::IdentityMismatch, call, score, true).with(
            &[
                ("principal", json!(principal)),
                ("claimed_principal", json!(claim_conflict)),
                ("spiffe_namespace_conflict", json!(ns_conflict)),
                (
                    "baseline_principals",
                    json!(
                        id.map(|i| {
                            let mut k: Vec<&str> =
                                i.principals.keys().map(|p| index.name(*p)).collect();
                            k.sort();
                            k
                        })
                        .unwrap_or_default()
                    ),
                ),
                ("baseline_identity_calls", json!(seen)),
                ("principal_known_for_workloads", json!(others.len())),
                ("p_upper", json!(p)),
            ],
            summary,
        ),
    )
}

/// `METHOD route` of a call, formatted only when a summary is written.
pub(crate) struct MethodRoute<'a>(pub(crate) &'a Call);

impl std::fmt::Display for MethodRoute<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.method, self.0.route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_parse_and_odd_input_does_not() {
        assert_eq!(
            spiffe_ns_sa("spiffe://cluster.local/ns/shop/sa/cart"),
            Some(("shop", "cart"))
        );
        assert_eq!(spiffe_ns_sa("spiffe://td/ns//sa/x"), None);
        assert_eq!(spiffe_ns_sa("cart"), None);
        assert_eq!(spiffe_ns_sa("spiffe://td"), None);
    }

    #[test]
    fn sensitive_patterns_match_routes_and_addresses() {
        let d = Detectors::new(&DetectorConfig::default());
        let mut c = Call {
            route: "/actuator/env".into(),
            ..Default::default()
        };
        assert_eq!(d.sensitive_match(&c).map(|m| m.0), Some("actuator"));
        c.route = "/latest/api/token".into();
        c.destination_address = Some("169.254.169.254:80".into());
        assert_eq!(d.sensitive_match(&c).map(|m| m.0), Some("cloud-metadata"));
        c.route = "/".into();
        c.destination_address = Some("10.0.0.7:15000".into());
        assert_eq!(d.sensitive_match(&c).map(|m| m.0), Some("envoy-admin"));
        c.destination_address = None;
        c.route = "/products/{id}".into();
        assert_eq!(d.sensitive_match(&c), None);
        c.route = "/debug/pprof/heap".into();
        assert_eq!(d.sensitive_match(&c).map(|m| m.0), Some("debug"));
        for route in [
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.channelz.v1.Channelz/GetTopChannels",
            "reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            c.route = route.into();
            assert_eq!(
                d.sensitive_match(&c).map(|m| m.0),
                Some("grpc-admin"),
                "{route}"
            );
        }
        // Health checks and look-alike application services stay quiet.
        for route in [
            "grpc.health.v1.Health/Check",
            "shop.grpc.reflection.Catalog/List",
        ] {
            c.route = route.into();
            assert_eq!(d.sensitive_match(&c), None, "{route}");
        }
    }

    /// The control-plane and cloud patterns, on the addresses and routes real clients
    /// use, and on look-alikes that must stay quiet.
    #[test]
    fn control_plane_and_cloud_metadata_are_sensitive_by_default() {
        let d = Detectors::new(&DetectorConfig::default());
        let matched = |address: Option<&str>, route: &str| {
            let c = Call {
                route: route.into(),
                destination_address: address.map(Into::into),
                ..Default::default()
            };
            d.sensitive_match(&c).map(|(name, _)| name.to_owned())
        };
        let hits = [
            (
                Some("kubernetes.default.svc:443"),
                "/version",
                "kubernetes-api",
            ),
            (
                Some("kubernetes.default.svc.cluster.local:443"),
                "/api",
                "kubernetes-api",
            ),
            (Some("kubernetes.default:443"), "/", "kubernetes-api"),
            (Some("kubernetes"), "/", "kubernetes-api"),
            (Some("10.0.0.1:6443"), "/healthz", "kubernetes-api"),
            (
                Some("kubernetes.default.svc:443"),
                "/api/v1/namespaces/shop/secrets",
                "kubernetes-secrets",
            ),
            (
                None,
                "/api/v1/namespaces/{id}/secrets/db-credentials",
                "kubernetes-secrets",
            ),
            (None, "/api/v1/secrets", "kubernetes-secrets"),
            (
                None,
                "/api/v1/namespaces/shop/serviceaccounts/cart/token",
                "kubernetes-secrets",
            ),
            (
                None,
                "/api/v1/namespaces/shop/pods/cart-7f9/exec",
                "kubernetes-pod-exec",
            ),
            (
                None,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "kubernetes-rbac-review",
            ),
            (
                None,
                "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                "kubernetes-rbac-review",
            ),
            (
                None,
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                "kubernetes-rbac-review",
            ),
            (Some("istiod.istio-system.svc:15012"), "/", "istiod"),
            (Some("10.0.3.4:15010"), "/", "istiod"),
            (Some("10.0.3.4:15014"), "/debug/syncz", "istiod"),
            (Some("istiod.istio-system.svc:15017"), "/inject", "istiod"),
            (Some("10.0.0.10:2379"), "/v3/kv/range", "etcd"),
            (Some("10.0.0.21:10250"), "/pods", "kubelet"),
            (Some("10.0.0.21:10255"), "/stats/summary", "kubelet"),
            (Some("10.0.0.7:15000"), "/config_dump", "envoy-admin"),
            (
                Some("169.254.169.254:80"),
                "/latest/meta-data/iam/security-credentials/",
                "cloud-metadata",
            ),
            (
                Some("169.254.169.254"),
                "/metadata/instance",
                "cloud-metadata",
            ),
            (
                Some("metadata.google.internal:80"),
                "/computeMetadata/v1/instance/service-accounts/default/token",
                "cloud-metadata",
            ),
            (
                Some("[fd00:ec2::254]:80"),
                "/latest/api/token",
                "cloud-metadata",
            ),
            (Some("fd00:ec2::254"), "/", "cloud-metadata"),
            (
                Some("169.254.170.2:80"),
                "/v2/credentials/abc",
                "cloud-metadata",
            ),
            (Some("168.63.129.16:80"), "/machine", "cloud-metadata"),
        ];
        for (address, route, want) in hits {
            assert_eq!(
                matched(address, route).as_deref(),
                Some(want),
                "{address:?} {route}"
            );
        }
        let quiet = [
            (Some("payments.shop.svc:443"), "/charge"),
            (Some("10.0.0.5:443"), "/api/v1/items"),
            (Some("kubernetes-dashboard.ops:443"), "/"),
            (Some("cart:8080"), "/api/v1/namespaces/shop/pods"),
            (Some("db:5432"), "/secretsanta"),
            (Some("10.0.0.5:23790"), "/"),
            (Some("10.0.0.5:102500"), "/"),
            (Some("169.254.169.25:80"), "/"),
            (None, "/apis/apps/v1/deployments"),
            (None, "/metadata/products/{id}"),
        ];
        for (address, route) in quiet {
            assert_eq!(matched(address, route), None, "{address:?} {route}");
        }
    }
}
