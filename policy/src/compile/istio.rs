//! Istio: one `ALLOW` AuthorizationPolicy per destination workload; a rule per source
//! principal set, its operations by method, path (exact or `{*}` template) and port.

use std::collections::BTreeMap;

use eastwest_model::Protocol;

use super::{app_labels, meta, placed};
use crate::crd::Selector;
use crate::crd::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, From, Operation, Rule, Source, To,
};
use crate::document::Document;
use crate::names;
use crate::rules::RuleSet;

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
        // principals → operations (sorted, deduplicated).
        let mut by_source: BTreeMap<Vec<String>, Vec<Operation>> = BTreeMap::new();
        for r in &w.rules {
            let principals: Vec<String> = r
                .source
                .principals
                .iter()
                .filter_map(|p| names::istio_principal(p))
                .collect();
            if principals.is_empty() {
                notes.push(format!(
                    "{} -> {} {} {}: the caller presented no usable SPIFFE principal; not allowed",
                    r.source.key, w.destination.key, r.method, r.route
                ));
                continue;
            }
            let ports = r.port.map(|p| vec![p.to_string()]);
            let op = match r.protocol {
                Protocol::Http | Protocol::Grpc => {
                    let (Some(m), Some(path)) = (
                        names::method(&r.method),
                        names::istio_path(r.protocol, &r.route),
                    ) else {
                        notes.push(format!(
                            "{} -> {} {} {}: method or route cannot be written exactly; not allowed",
                            r.source.key, w.destination.key, r.method, r.route
                        ));
                        continue;
                    };
                    Operation {
                        methods: Some(vec![m.to_owned()]),
                        paths: Some(vec![path]),
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
                        notes.push(format!(
                            "{} -> {} {}: a non-HTTP call without a port cannot be narrowed; not allowed",
                            r.source.key, w.destination.key, r.route
                        ));
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
            selector: Some(Selector::labels(app_labels(app))),
            action: Some("ALLOW".into()),
            rules: Some(rules),
        };
        let mut policy =
            AuthorizationPolicy::new(&names::object_name(&["eastwest-allow", app]), spec);
        policy.metadata = meta(names::object_name(&["eastwest-allow", app]), ns);
        docs.push(Document::Istio(policy));
    }
    docs
}
