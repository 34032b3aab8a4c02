//! `CiliumNetworkPolicy`: one per destination workload; an ingress rule per source
//! workload, per port, with L7 HTTP rules (method and anchored path regex) for HTTP and
//! gRPC calls (no path for an overflowed edge) and plain L4 for the rest.

use std::collections::{BTreeMap, BTreeSet};

use eastwest_model::Protocol;

use super::{PathRule, app_labels, destinations, meta, placed};
use crate::crd::Selector;
use crate::crd::cilium::{
    CiliumNetworkPolicy, CiliumNetworkPolicySpec, HttpRule, IngressRule, L7Rules, PortProtocol,
    PortRule,
};
use crate::document::Document;
use crate::names::{self, CILIUM_NAMESPACE_LABEL};
use crate::rules::RuleSet;

/// HTTP rules (method, path regex; no path: any) of one port; `None` once an L4 call
/// makes the whole port allowed.
type PortRules = Option<BTreeSet<(String, Option<String>)>>;

pub(super) fn compile(rules: &RuleSet, notes: &mut Vec<String>) -> Vec<Document> {
    let mut docs = Vec::new();
    for d in destinations(rules, notes) {
        let mut sources: BTreeMap<(&str, &str), BTreeMap<u16, PortRules>> = BTreeMap::new();
        for r in &d.workload.rules {
            let Some(src) = placed(&r.source) else {
                d.skip(
                    r,
                    "the caller has no namespace or no valid label value",
                    notes,
                );
                continue;
            };
            let Some(port) = r.port else {
                d.skip(r, "no known port (L7 rules need one)", notes);
                continue;
            };
            let entry = sources
                .entry(src)
                .or_default()
                .entry(port)
                .or_insert_with(|| Some(BTreeSet::new()));
            match r.protocol {
                Protocol::Http | Protocol::Grpc => {
                    let Some((m, path)) = d.http(r, notes, names::path_regex) else {
                        continue;
                    };
                    let path = match path {
                        PathRule::Exact(p) => Some(p),
                        PathRule::Any => None,
                    };
                    if let Some(set) = entry.as_mut() {
                        set.insert((m.to_owned(), path));
                    }
                }
                _ => *entry = None,
            }
        }
        let ingress = sources
            .into_iter()
            .map(|((sns, sapp), ports)| {
                let mut labels = app_labels(sapp);
                labels.insert(CILIUM_NAMESPACE_LABEL.to_owned(), sns.to_owned());
                IngressRule {
                    from_endpoints: Some(vec![Selector::labels(labels)]),
                    from_entities: None,
                    to_ports: Some(
                        ports
                            .into_iter()
                            .map(|(port, http)| PortRule {
                                ports: Some(vec![PortProtocol {
                                    port: port.to_string(),
                                    protocol: Some("TCP".into()),
                                }]),
                                rules: http.map(|http| L7Rules {
                                    http: Some(
                                        http.into_iter()
                                            .map(|(m, p)| HttpRule {
                                                method: Some(format!("^{m}$")),
                                                path: p,
                                            })
                                            .collect(),
                                    ),
                                }),
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        let spec = CiliumNetworkPolicySpec {
            description: Some(format!("eastwest: observed callers of {}", d.app)),
            endpoint_selector: Selector::labels(app_labels(d.app)),
            ingress: Some(ingress),
            ingress_deny: None,
        };
        let name = names::object_name(&["eastwest-allow", d.app]);
        let mut p = CiliumNetworkPolicy::new(&name, spec);
        p.metadata = meta(name, d.ns);
        docs.push(Document::Cilium(p));
    }
    docs
}
