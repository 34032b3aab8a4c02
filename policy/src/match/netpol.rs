//! Kubernetes `NetworkPolicy`, ingress only: a pod selected by any policy of its
//! namespace whose `policyTypes` include `Ingress` (or leave them out) is isolated, and
//! a call reaches it only when some ingress rule of a selecting policy admits its source
//! (`podSelector` alone: pods of the policy's namespace; `namespaceSelector` alone: any
//! pod of matching namespaces; both: matching pods of matching namespaces; `ipBlock`:
//! unknown here, so no match) and its TCP port (number, or range with `endPort`; a
//! named port is unknown here). L4 only: method and path never matter.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::selector::{self, namespace_labels, pod_labels};
use super::{CallView, Layer, Verdict, name, namespace};
use crate::document::Document;

pub(super) struct NetPol {
    policies: Vec<NetworkPolicy>,
}

impl NetPol {
    pub fn new(docs: &[Document]) -> Self {
        Self {
            policies: docs
                .iter()
                .filter_map(|d| match d {
                    Document::NetworkPolicy(p) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
        }
    }
}

fn peer_matches(peer: &NetworkPolicyPeer, policy_ns: &str, call: &CallView) -> bool {
    if peer.ip_block.is_some() {
        return false;
    }
    let Some(src_ns) = call.source_namespace.as_deref() else {
        return false;
    };
    let pods = pod_labels(&call.source_service);
    let ns_ok = match &peer.namespace_selector {
        None => src_ns == policy_ns,
        Some(s) => selector::k8s(s, &namespace_labels(src_ns)),
    };
    let pod_ok = peer
        .pod_selector
        .as_ref()
        .is_none_or(|s| selector::k8s(s, &pods));
    (peer.namespace_selector.is_some() || peer.pod_selector.is_some()) && ns_ok && pod_ok
}

fn port_matches(p: &NetworkPolicyPort, call: &CallView) -> bool {
    if p.protocol.as_deref().unwrap_or("TCP") != "TCP" {
        return false;
    }
    match (&p.port, call.port) {
        (None, _) => true,
        (Some(IntOrString::Int(n)), Some(port)) => {
            let port = i32::from(port);
            port == *n || p.end_port.is_some_and(|end| (*n..=end).contains(&port))
        }
        _ => false,
    }
}

impl Layer for NetPol {
    fn verdict(&self, call: &CallView) -> Verdict {
        let Some(ns) = call.destination_namespace.as_deref() else {
            return Verdict::DefaultAllowed;
        };
        let labels = pod_labels(&call.destination_service);
        let selecting: Vec<&NetworkPolicy> = self
            .policies
            .iter()
            .filter(|p| namespace(&p.metadata) == ns)
            .filter(|p| {
                let Some(spec) = &p.spec else { return false };
                let ingress = spec
                    .policy_types
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| t == "Ingress"));
                ingress
                    && spec
                        .pod_selector
                        .as_ref()
                        .is_none_or(|s| selector::k8s(s, &labels))
            })
            .collect();
        if selecting.is_empty() {
            return Verdict::DefaultAllowed;
        }
        for p in &selecting {
            let spec = p.spec.as_ref().expect("filtered on spec");
            let admitted = spec.ingress.iter().flatten().position(|rule| {
                let from_ok = rule.from.as_ref().is_none_or(|f| {
                    f.is_empty() || f.iter().any(|peer| peer_matches(peer, ns, call))
                });
                let ports_ok = rule
                    .ports
                    .as_ref()
                    .is_none_or(|ps| ps.is_empty() || ps.iter().any(|p| port_matches(p, call)));
                from_ok && ports_ok
            });
            if let Some(i) = admitted {
                return Verdict::Allowed(format!(
                    "NetworkPolicy {ns}/{} ingress {i}",
                    name(&p.metadata)
                ));
            }
        }
        Verdict::Denied(format!(
            "isolated by NetworkPolicy {ns}/{}, no ingress rule admits the caller and port",
            name(&selecting[0].metadata)
        ))
    }
}

/// Every ingress rule, named as [`Verdict::Allowed`] names it, with why it is broad.
pub(super) fn rules(p: &NetworkPolicy) -> Vec<(String, Option<String>)> {
    let doc = format!(
        "NetworkPolicy {}/{}",
        namespace(&p.metadata),
        name(&p.metadata)
    );
    let empty = |s: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
        s.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(|l| l.is_empty())
                && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        })
    };
    p.spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .enumerate()
        .map(|(i, r)| {
            let mut why = Vec::new();
            let from = r.from.as_deref().unwrap_or_default();
            if from.is_empty()
                || from.iter().any(|f| {
                    empty(&f.pod_selector)
                        || (f.pod_selector.is_none() && f.namespace_selector.is_some())
                        || f.ip_block.is_some()
                })
            {
                why.push("any source, whole namespaces or IP blocks");
            }
            if r.ports.as_ref().is_none_or(|p| p.is_empty()) {
                why.push("every port");
            }
            (
                format!("{doc} ingress {i}"),
                (!why.is_empty()).then(|| why.join(", ")),
            )
        })
        .collect()
}
