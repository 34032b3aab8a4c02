//! Istio: one `ALLOW` AuthorizationPolicy per destination workload; a rule per source
//! principal set, its operations by method, path (exact or `{*}` template; none for an
//! overflowed edge) and port.

use std::collections::BTreeMap;

use eastwest_model::Protocol;

use super::{PathRule, app_labels, destinations, meta};
use crate::crd::Selector;
use crate::crd::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, From, Operation, Rule, Source, To,
};
use crate::document::Document;
use crate::names;
use crate::rules::RuleSet;

pub(super) fn compile(rules: &RuleSet, notes: &mut Vec<String>) -> Vec<Document> {
    let mut docs = Vec::new();
    for d in destinations(rules, notes) {
        // principals → operations (sorted, deduplicated).
        let mut by_source: BTreeMap<Vec<String>, Vec<Operation>> = BTreeMap::new();
        for r in &d.workload.rules {
            let principals: Vec<String> = r
                .source
                .principals
                .iter()
                .filter_map(|p| names::istio_principal(p))
                .collect();
            if principals.is_empty() {
                d.skip(r, "the caller presented no usable SPIFFE principal", notes);
                continue;
            }
            let ports = r.port.map(|p| vec![p.to_string()]);
            let op = match r.protocol {
                Protocol::Http | Protocol::Grpc => {
                    let Some((m, path)) = d.http(r, notes, names::istio_path) else {
                        continue;
                    };
                    Operation {
                        methods: Some(vec![m.to_owned()]),
                        // No `paths`: any path (an overflowed edge).
                        paths: match path {
                            PathRule::Exact(p) => Some(vec![p]),
                            PathRule::Any => None,
                        },
                        ports,
                        ..Default::default()
                    }
                }
                // Methods and paths are HTTP-only in Istio: a TCP rule names ports.
                _ => match ports {
                    Some(ports) => Operation {
                        ports: Some(ports),
                        ..Default::default()
                    },
                    None => {
                        d.skip(
                            r,
                            "a non-HTTP call without a port cannot be narrowed",
                            notes,
                        );
                        continue;
                    }
                },
            };
            let ops = by_source.entry(principals).or_default();
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
        let rules: Vec<Rule> = by_source
            .into_iter()
            .map(|(principals, ops)| Rule {
                from: Some(vec![From {
                    source: Source {
                        principals: Some(principals),
                        ..Default::default()
                    },
                }]),
                to: Some(ops.into_iter().map(|operation| To { operation }).collect()),
            })
            .collect();
        // An ALLOW policy with no rule denies everything: that is what least privilege
        // means for a workload nobody may call.
        let spec = AuthorizationPolicySpec {
            selector: Some(Selector::labels(app_labels(d.app))),
            action: Some("ALLOW".into()),
            rules: Some(rules),
        };
        let name = names::object_name(&["eastwest-allow", d.app]);
        let mut policy = AuthorizationPolicy::new(&name, spec);
        policy.metadata = meta(name, d.ns);
        docs.push(Document::Istio(policy));
    }
    docs
}
