//! Rule set → policy documents, one dialect at a time. Each compiler allows exactly the
//! operations of the rule set that its dialect can name without widening them; what it
//! cannot name is left out (so it would be denied) and said in a note. The one
//! exception is an edge whose routes overflowed the collector's route cap: its paths
//! are unknown, so its methods are allowed on any path, said in a note and reported by
//! drift as broad.

mod cilium;
mod istio;
mod linkerd;
mod netpol;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use eastwest_model::Protocol;

use crate::document::{Document, Format};
use crate::names::{self, APP_LABEL};
use crate::rules::{Peer, Rule, RuleSet, WorkloadRules};

/// Documents for one dialect and what could not be expressed in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub format: Format,
    pub documents: Vec<Document>,
    pub notes: Vec<String>,
}

impl Compiled {
    /// The YAML to apply, with a header naming the source and every note.
    pub fn to_yaml(&self, rules: &RuleSet) -> Result<String, crate::PolicyError> {
        let mut header = vec![
            format!(
                "eastwest policy generate --format {}: least-privilege allow rules for {} workload(s), {} operation(s); from {}",
                self.format.as_str(),
                rules.workloads.len(),
                rules.rule_count(),
                match &rules.from {
                    crate::RuleSource::Baseline { snapshot } => format!("baseline {snapshot}"),
                    crate::RuleSource::History { since, until } => format!(
                        "call history {} .. {}",
                        since.as_deref().unwrap_or("start"),
                        until.as_deref().unwrap_or("end")
                    ),
                }
            ),
            "Review before applying: pods must carry `app: <service>`; ports are the ones callers dialled.".into(),
        ];
        for e in &rules.excluded {
            header.push(format!(
                "not allowed (alert {} is not accepted): {} -> {} {} {}",
                e.alert_id, e.source, e.destination, e.method, e.route
            ));
        }
        if self.format == Format::Linkerd {
            header.push("Linkerd: ports without a Server follow the default inbound policy; annotate namespaces config.linkerd.io/default-inbound-policy: deny.".into());
        }
        header.extend(self.notes.iter().map(|n| format!("note: {n}")));
        crate::document::to_yaml(&header, &self.documents)
    }
}

/// Compiles `rules` into `format`.
pub fn compile(rules: &RuleSet, format: Format) -> Compiled {
    let mut notes = Vec::new();
    let documents = match format {
        Format::Istio => istio::compile(rules, &mut notes),
        Format::NetworkPolicy => netpol::compile(rules, &mut notes),
        Format::Cilium => cilium::compile(rules, &mut notes),
        Format::Linkerd => linkerd::compile(rules, &mut notes),
    };
    Compiled {
        format,
        documents,
        notes,
    }
}

/// A destination workload a policy can select.
pub(crate) struct Placed<'a> {
    pub ns: &'a str,
    pub app: &'a str,
    pub workload: &'a WorkloadRules,
}

/// The destinations every compiler writes a policy for; each one that cannot be
/// selected exactly gets a note instead.
pub(crate) fn destinations<'a>(rules: &'a RuleSet, notes: &mut Vec<String>) -> Vec<Placed<'a>> {
    let mut out = Vec::new();
    for w in &rules.workloads {
        match placed(&w.destination) {
            Some((ns, app)) => out.push(Placed {
                ns,
                app,
                workload: w,
            }),
            None => notes.push(format!(
                "{}: no namespace or not a valid label value; no policy",
                w.destination.key
            )),
        }
    }
    out
}

impl Placed<'_> {
    /// Notes that `r` is left out of this destination's policy, and why.
    pub fn skip(&self, r: &Rule, why: &str, notes: &mut Vec<String>) {
        notes.push(format!(
            "{} -> {} {} {}: {why}; not allowed",
            r.source.key, self.workload.destination.key, r.method, r.route
        ));
    }

    /// An HTTP or gRPC rule's method and path in a dialect's form (`path` writes a
    /// route), or `None` with a note when either cannot be written exactly.
    pub fn http<'r, T>(
        &self,
        r: &'r Rule,
        notes: &mut Vec<String>,
        path: impl FnOnce(Protocol, &str) -> Option<T>,
    ) -> Option<(&'r str, PathRule<T>)> {
        let overflow = names::is_overflow(r.protocol, &r.route);
        let p = if overflow {
            Some(PathRule::Any)
        } else {
            path(r.protocol, &r.route).map(PathRule::Exact)
        };
        match (names::method(&r.method), p) {
            (Some(m), Some(p)) => {
                if overflow {
                    notes.push(format!(
                        "{} -> {} {m}: the edge had more routes than the collector keeps \
                         ([normalizer] max_routes_per_edge), so some paths are unknown; \
                         {m} is allowed on ANY path, broader than observed (review it, or \
                         raise the cap and regenerate)",
                        r.source.key, self.workload.destination.key
                    ));
                }
                Some((m, p))
            }
            _ => {
                self.skip(r, "method or route cannot be written exactly", notes);
                None
            }
        }
    }
}

/// The path part of an HTTP operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathRule<T> {
    /// The observed route, in the dialect's form.
    Exact(T),
    /// Any path: the route overflowed the collector's cap.
    Any,
}

/// The namespace and `app` label of a workload, when both can be written exactly.
pub(crate) fn placed(peer: &Peer) -> Option<(&str, &str)> {
    let ns = names::namespace(peer.namespace.as_deref()?)?;
    Some((ns, names::label_value(&peer.service)?))
}

pub(crate) fn app_labels(service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(APP_LABEL.to_owned(), service.to_owned())])
}

pub(crate) fn meta(name: String, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "eastwest".to_owned(),
        )])),
        ..Default::default()
    }
}
