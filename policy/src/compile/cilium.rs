//! `CiliumNetworkPolicy`: one per destination workload; an ingress rule per source
//! workload, per port, with L7 HTTP rules (method and anchored path regex) for HTTP and
//! gRPC calls and plain L4 for the rest.

use std::collections::{BTreeMap, BTreeSet};

use eastwest_model::Protocol;

use super::{app_labels, meta, placed};
use crate::crd::Selector;
use crate::crd::cilium::{
    CiliumNetworkPolicy, CiliumNetworkPolicySpec, HttpRule, IngressRule, L7Rules, PortProtocol,
    PortRule,
};
use crate::document::Document;
use crate::names::{self, CILIUM_NAMESPACE_LABEL};
use crate::rules::RuleSet;

/// HTTP rules of one port; `None` once an L4 call makes the whole port allowed.
type PortRules = Option<BTreeSet<(String, String)>>;

pub(super) fn compile(rules: &RuleSet, notes: &mut Vec<String>) -> Vec<Document> {
    let mut docs = Vec::new();
    for w in &rules.workloads {
        let Some((ns, app)) = placed(&w.destination) else {
            notes.push(format!(
                "{}: no namespace or not a valid label value; no policy",
                w.destination.key
            ));
            continue;
        };
        let mut sources: BTreeMap<(&str, &str), BTreeMap<u16, PortRules>> = BTreeMap::new();
        for r in &w.rules {
            let Some(src) = placed(&r.source) else {
                notes.push(format!(
                    "{} -> {}: the caller has no namespace or no valid label value; not allowed",
                    r.source.key, w.destination.key
                ));
                continue;
            };
            let Some(port) = r.port else {
                notes.push(format!(
                    "{} -> {} {} {}: no known port (L7 rules need one); not allowed",
                    r.source.key, w.destination.key, r.method, r.route
                ));
                continue;
            };
            let entry = sources
                .entry(src)
                .or_default()
                .entry(port)
                .or_insert_with(|| Some(BTreeSet::new()));
            match r.protocol {
                Protocol::Http | Protocol::Grpc => {
                    let (Some(m), Some(path)) = (
                        names::method(&r.method),
                        names::path_regex(r.protocol, &r.route),
                    ) else {
                        notes.push(format!(
                            "{} -> {} {} {}: method or route cannot be written exactly; not allowed",
                            r.source.key, w.destination.key, r.method, r.route
                        ));
                        continue;
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
                                                path: Some(p),
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
            description: Some(format!("eastwest: observed callers of {app}")),
            endpoint_selector: Selector::labels(app_labels(app)),
            ingress: Some(ingress),
            ingress_deny: None,
        };
        let name = names::object_name(&["eastwest-allow", app]);
        let mut p = CiliumNetworkPolicy::new(&name, spec);
        p.metadata = meta(name, ns);
        docs.push(Document::Cilium(p));
    }
    docs
}
