//! `CiliumNetworkPolicy`, ingress: a policy selects endpoints of its own namespace by
//! `endpointSelector`; any selecting policy with ingress or ingress-deny rules puts the
//! endpoint in default deny. `ingressDeny` rules are checked first (L3/L4 only). A
//! rule's peers are `fromEndpoints` selectors (a selector without a namespace label is
//! confined to the policy's namespace) or `fromEntities` (`all`, `cluster`); with
//! neither, any peer. `toPorts` narrows to ports (`0` is any) and, with `rules.http`,
//! to requests whose method and path match one rule's regular expressions in full.

use super::selector::{self, Labels};
use super::{CallView, Layer, Verdict, full_regex, invalid, name, namespace};
use crate::PolicyError;
use crate::crd::cilium::{CiliumNetworkPolicy, IngressRule, PortRule};
use crate::document::Document;
use crate::names::APP_LABEL;

const NS_KEY: &str = "io.kubernetes.pod.namespace";

struct Compiled {
    policy: CiliumNetworkPolicy,
    /// (method, path) regexes per rule, per port rule, in document order.
    http: Vec<Vec<HttpRules>>,
}

pub(super) struct Cilium {
    policies: Vec<Compiled>,
}

impl Cilium {
    pub fn new(docs: &[Document]) -> Result<Self, PolicyError> {
        let mut policies = Vec::new();
        for d in docs {
            let Document::Cilium(p) = d else { continue };
            let doc = format!(
                "CiliumNetworkPolicy {}/{}",
                namespace(&p.metadata),
                name(&p.metadata)
            );
            let re = |s: &Option<String>| {
                s.as_deref()
                    .map(full_regex)
                    .transpose()
                    .map_err(|e| invalid(&doc, e))
            };
            let mut http = Vec::new();
            for rule in p.spec.ingress.iter().flatten() {
                let mut per_port = Vec::new();
                for pr in rule.to_ports.iter().flatten() {
                    let mut rules = Vec::new();
                    for h in pr.rules.iter().flat_map(|r| r.http.iter().flatten()) {
                        rules.push((re(&h.method)?, re(&h.path)?));
                    }
                    per_port.push(rules);
                }
                http.push(per_port);
            }
            policies.push(Compiled {
                policy: p.clone(),
                http,
            });
        }
        Ok(Self { policies })
    }
}

/// Cilium label keys carry a source prefix (`k8s:`, `any:`); compare without it.
fn unprefixed(k: &str) -> &str {
    k.strip_prefix("k8s:")
        .or_else(|| k.strip_prefix("any:"))
        .unwrap_or(k)
}

fn endpoint_labels(service: &str, ns: &str) -> Labels {
    Labels::from([
        (APP_LABEL.to_owned(), service.to_owned()),
        (NS_KEY.to_owned(), ns.to_owned()),
    ])
}

fn peer_matches(rule: &IngressRule, policy_ns: &str, call: &CallView) -> bool {
    if rule.from_endpoints.is_none() && rule.from_entities.is_none() {
        return true;
    }
    let entity = rule
        .from_entities
        .iter()
        .flatten()
        .any(|e| e == "all" || e == "cluster");
    let Some(src_ns) = call.source_namespace.as_deref() else {
        return entity;
    };
    let labels = endpoint_labels(&call.source_service, src_ns);
    entity
        || rule.from_endpoints.iter().flatten().any(|s| {
            let names_ns = s
                .match_labels
                .iter()
                .flatten()
                .any(|(k, _)| unprefixed(k) == NS_KEY)
                || s.match_expressions
                    .iter()
                    .flatten()
                    .any(|e| unprefixed(&e.key) == NS_KEY);
            (names_ns || src_ns == policy_ns) && selector::crd(s, &labels, unprefixed)
        })
}

fn port_matches(pr: &PortRule, call: &CallView) -> bool {
    pr.ports.as_ref().is_none_or(|ps| {
        ps.is_empty()
            || ps.iter().any(|p| {
                matches!(p.protocol.as_deref(), None | Some("TCP" | "ANY"))
                    && (p.port == "0" || call.port.is_some_and(|c| p.port == c.to_string()))
            })
    })
}

type HttpRules = Vec<(Option<regex::Regex>, Option<regex::Regex>)>;

fn l7_matches(pr: &PortRule, http: &HttpRules, call: &CallView) -> bool {
    let has_http = pr.rules.as_ref().is_some_and(|r| r.http.is_some());
    if !has_http {
        return true;
    }
    if call.path_unknown() {
        return http.is_empty()
            || http
                .iter()
                .any(|(m, p)| p.is_none() && m.as_ref().is_none_or(|m| m.is_match(&call.method)));
    }
    let Some(path) = call.path().filter(|_| call.is_http()) else {
        return false;
    };
    http.is_empty()
        || http.iter().any(|(m, p)| {
            m.as_ref().is_none_or(|m| m.is_match(&call.method))
                && p.as_ref().is_none_or(|p| p.is_match(&path))
        })
}

impl Layer for Cilium {
    fn verdict(&self, call: &CallView) -> Verdict {
        let Some(ns) = call.destination_namespace.as_deref() else {
            return Verdict::DefaultAllowed;
        };
        let labels = endpoint_labels(&call.destination_service, ns);
        let selecting: Vec<&Compiled> = self
            .policies
            .iter()
            .filter(|c| namespace(&c.policy.metadata) == ns)
            .filter(|c| selector::crd(&c.policy.spec.endpoint_selector, &labels, unprefixed))
            .collect();
        let doc = |c: &Compiled| format!("CiliumNetworkPolicy {ns}/{}", name(&c.policy.metadata));
        for c in &selecting {
            for rule in c.policy.spec.ingress_deny.iter().flatten() {
                let ports = rule
                    .to_ports
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| port_matches(p, call)));
                if peer_matches(rule, ns, call) && ports {
                    return Verdict::Denied(doc(c));
                }
            }
        }
        let enforcing: Vec<_> = selecting
            .iter()
            .filter(|c| c.policy.spec.ingress.is_some() || c.policy.spec.ingress_deny.is_some())
            .collect();
        if enforcing.is_empty() {
            return Verdict::DefaultAllowed;
        }
        for c in &enforcing {
            let rules = c.policy.spec.ingress.iter().flatten().zip(&c.http);
            for (i, (rule, http)) in rules.enumerate() {
                if !peer_matches(rule, ns, call) {
                    continue;
                }
                let ok = match &rule.to_ports {
                    None => true,
                    Some(ps) => ps
                        .iter()
                        .zip(http)
                        .any(|(pr, h)| port_matches(pr, call) && l7_matches(pr, h, call)),
                };
                if ok {
                    return Verdict::Allowed(format!("{} ingress {i}", doc(c)));
                }
            }
        }
        Verdict::Denied(format!("default deny of {}", doc(enforcing[0])))
    }
}

/// Every ingress rule, named as [`Verdict::Allowed`] names it, with why it is broad.
pub(super) fn rules(p: &CiliumNetworkPolicy) -> Vec<(String, Option<String>)> {
    let doc = format!(
        "CiliumNetworkPolicy {}/{}",
        namespace(&p.metadata),
        name(&p.metadata)
    );
    let empty = |s: &crate::crd::Selector| {
        s.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    };
    p.spec
        .ingress
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| {
            let mut why = Vec::new();
            let any_peer = (r.from_endpoints.is_none() && r.from_entities.is_none())
                || r.from_entities
                    .iter()
                    .flatten()
                    .any(|e| e == "all" || e == "cluster")
                || r.from_endpoints.iter().flatten().any(empty);
            if any_peer {
                why.push("any peer");
            }
            let ports = r.to_ports.as_deref().unwrap_or_default();
            let wild = |x: &str| x.contains(".*") || x.contains(".+");
            let any_path = ports.is_empty()
                || ports.iter().any(|p| {
                    p.rules
                        .as_ref()
                        .and_then(|r| r.http.as_ref())
                        .is_none_or(|h| {
                            h.is_empty() || h.iter().any(|h| h.path.as_deref().is_none_or(wild))
                        })
                });
            if any_path {
                why.push("any or wildcard path");
            }
            (
                format!("{doc} ingress {i}"),
                (!why.is_empty()).then(|| why.join(", ")),
            )
        })
        .collect()
}
