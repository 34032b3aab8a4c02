//! Kubernetes `NetworkPolicy`: one per destination workload, ingress only, an ingress
//! rule per source workload (its pod and namespace selectors) with the ports it dialled.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{app_labels, destinations, meta, placed};
use crate::document::Document;
use crate::names::{self, NAMESPACE_LABEL};
use crate::rules::RuleSet;

fn labels(l: BTreeMap<String, String>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(l),
        match_expressions: None,
    })
}

pub(super) fn compile(rules: &RuleSet, notes: &mut Vec<String>) -> Vec<Document> {
    let mut docs = Vec::new();
    for d in destinations(rules, notes) {
        // (source namespace, source app) → ports (None: some call had no known port).
        let mut sources: BTreeMap<(&str, &str), Option<BTreeSet<u16>>> = BTreeMap::new();
        for r in &d.workload.rules {
            let Some(src) = placed(&r.source) else {
                d.skip(
                    r,
                    "the caller has no namespace or no valid label value",
                    notes,
                );
                continue;
            };
            let ports = sources.entry(src).or_insert_with(|| Some(BTreeSet::new()));
            match (ports.as_mut(), r.port) {
                (Some(set), Some(p)) => {
                    set.insert(p);
                }
                (Some(_), None) => {
                    notes.push(format!(
                        "{} -> {}: a call without a known port; every port is allowed from that caller",
                        r.source.key, d.workload.destination.key
                    ));
                    *ports = None;
                }
                (None, _) => {}
            }
        }
        let ingress = sources
            .into_iter()
            .map(|((sns, sapp), ports)| NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: labels(app_labels(sapp)),
                    namespace_selector: labels(BTreeMap::from([(
                        NAMESPACE_LABEL.to_owned(),
                        sns.to_owned(),
                    )])),
                    ip_block: None,
                }]),
                ports: ports.map(|ports| {
                    ports
                        .into_iter()
                        .map(|p| NetworkPolicyPort {
                            port: Some(IntOrString::Int(i32::from(p))),
                            protocol: Some("TCP".into()),
                            end_port: None,
                        })
                        .collect()
                }),
            })
            .collect();
        docs.push(Document::NetworkPolicy(NetworkPolicy {
            metadata: meta(names::object_name(&["eastwest-allow", d.app]), d.ns),
            spec: Some(NetworkPolicySpec {
                pod_selector: labels(app_labels(d.app)),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(ingress),
                egress: None,
            }),
        }));
    }
    docs
}
