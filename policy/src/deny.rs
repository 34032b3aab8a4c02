//! From alert to remediation: the smallest deny rule for an alert's call, as a
//! suggestion (eastwest applies nothing). Istio: a `DENY` AuthorizationPolicy on the
//! callee for the caller's principal and the alert's method and path (the whole edge
//! when the alert names no route). Cilium: an `ingressDeny` rule from the caller's
//! endpoints — L3 only, since Cilium deny policies take no L7 rules. A name that cannot
//! be written exactly gives no rule (and a note), never a wider one.

use eastwest_model::{Alert, Protocol};
use serde::Serialize;

use crate::compile::{app_labels, meta, placed};
use crate::crd::Selector;
use crate::crd::cilium::{CiliumNetworkPolicy, CiliumNetworkPolicySpec, IngressRule};
use crate::crd::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, From, Operation, Rule, Source, To,
};
use crate::document::{Document, to_yaml};
use crate::names::{self, CILIUM_NAMESPACE_LABEL};
use crate::rules::Peer;

/// Suggested deny rules for one alert, as YAML to review and apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DenySuggestion {
    pub istio: Option<String>,
    pub cilium: Option<String>,
    /// What could not be expressed, and how wide each rule is.
    pub notes: Vec<String>,
}

fn peer(w: &eastwest_model::Workload) -> Peer {
    Peer {
        key: w.key().into(),
        service: w.service.to_string(),
        namespace: w.namespace.as_deref().map(String::from),
        principals: w.principal.iter().map(|p| p.to_string()).collect(),
    }
}

fn protocol_of(route: &str) -> Protocol {
    if route.starts_with('/') {
        Protocol::Http
    } else {
        Protocol::Grpc
    }
}

/// The documents of [`deny_rules`] (for tests and backtests).
pub fn deny_documents(alert: &Alert) -> (Vec<Document>, Vec<String>) {
    let mut notes = Vec::new();
    let mut docs = Vec::new();
    let Some(dest) = alert.destination.as_ref() else {
        notes.push(
            "the alert names no callee (it is about the caller's behaviour): no deny rule".into(),
        );
        return (docs, notes);
    };
    let (src, dst) = (peer(&alert.source), peer(dest));
    let Some((ns, app)) = placed(&dst) else {
        notes.push(format!(
            "{}: no namespace or not a valid label value: no rule",
            dst.key
        ));
        return (docs, notes);
    };
    let short: String = alert
        .id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let name = names::object_name(&["eastwest-deny", app, &short]);
    // Istio.
    match alert
        .source
        .principal
        .as_deref()
        .and_then(names::istio_principal)
    {
        None => notes.push("istio: the caller presented no usable principal: no Istio rule".into()),
        Some(principal) => {
            let to = match (alert.method.as_deref(), alert.route.as_deref()) {
                (Some(m), Some(r)) => {
                    let op = names::method(m).zip(names::istio_path(protocol_of(r), r));
                    match op {
                        Some((m, path)) => Some(vec![To {
                            operation: Operation {
                                methods: Some(vec![m.to_owned()]),
                                paths: Some(vec![path]),
                                ..Default::default()
                            },
                        }]),
                        None => {
                            notes.push("istio: the method or route cannot be written exactly; the rule denies the whole edge".into());
                            None
                        }
                    }
                }
                _ => None,
            };
            let spec = AuthorizationPolicySpec {
                selector: Some(Selector::labels(app_labels(app))),
                action: Some("DENY".into()),
                rules: Some(vec![Rule {
                    from: Some(vec![From {
                        source: Source {
                            principals: Some(vec![principal]),
                            ..Default::default()
                        },
                    }]),
                    to,
                }]),
            };
            let mut p = AuthorizationPolicy::new(&name, spec);
            p.metadata = meta(name.clone(), ns);
            docs.push(Document::Istio(p));
        }
    }
    // Cilium.
    match placed(&src) {
        None => notes.push(
            "cilium: the caller has no namespace or no valid label value: no Cilium rule".into(),
        ),
        Some((sns, sapp)) => {
            let mut labels = app_labels(sapp);
            labels.insert(CILIUM_NAMESPACE_LABEL.to_owned(), sns.to_owned());
            let spec = CiliumNetworkPolicySpec {
                description: Some(format!("eastwest: deny suggested by alert {}", alert.id)),
                endpoint_selector: Selector::labels(app_labels(app)),
                ingress: None,
                ingress_deny: Some(vec![IngressRule {
                    from_endpoints: Some(vec![Selector::labels(labels)]),
                    ..Default::default()
                }]),
            };
            let mut p = CiliumNetworkPolicy::new(&name, spec);
            p.metadata = meta(name, ns);
            docs.push(Document::Cilium(p));
            notes.push(format!(
                "cilium: deny policies are L3/L4, so this denies every call from {} to {}; and a policy with ingressDeny puts {} in default deny: add it to its allow policy rather than applying it alone",
                src.key, dst.key, dst.key
            ));
        }
    }
    (docs, notes)
}

/// The minimal deny rules for `alert`'s call.
pub fn deny_rules(alert: &Alert) -> DenySuggestion {
    let (docs, notes) = deny_documents(alert);
    let mut out = DenySuggestion {
        notes,
        ..Default::default()
    };
    let header = |d: &Document| {
        vec![format!(
            "eastwest: suggested deny for alert {} ({}); review before applying",
            alert.id,
            d.describe()
        )]
    };
    for d in docs {
        let yaml = to_yaml(&header(&d), std::slice::from_ref(&d)).ok();
        match d {
            Document::Istio(_) => out.istio = yaml,
            Document::Cilium(_) => out.cilium = yaml,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use eastwest_model::{AlertKind, AlertState, Severity, Workload};

    use super::*;
    use crate::{CallView, PolicySet, Verdict, parse_yaml};

    fn alert(route: Option<&str>, principal: Option<&str>) -> Alert {
        let mut source = Workload::new("cart").in_namespace("shop");
        source.principal = principal.map(Into::into);
        Alert {
            id: "0190a1b2-c3d4".into(),
            kind: AlertKind::SensitiveEndpoint,
            severity: Severity::High,
            score: 9.0,
            source,
            destination: Some(Workload::new("users").in_namespace("shop")),
            method: route.map(|_| "DELETE".into()),
            route: route.map(str::to_owned),
            entry: None,
            first_seen: Utc::now(),
            last_seen: Utc::now(),
            count: 1,
            trace_ids: vec![],
            incident_id: None,
            summary: String::new(),
            evidence: Default::default(),
            state: AlertState::Open,
        }
    }

    fn view(method: &str, route: &str) -> CallView {
        crate::testdata::call("cart", "users", method, route, 8080)
    }

    #[test]
    fn istio_deny_blocks_the_alerted_call_and_nothing_else() {
        let s = deny_rules(&alert(
            Some("/admin/users/{id}"),
            Some("spiffe://cluster.local/ns/shop/sa/cart"),
        ));
        let docs = parse_yaml(s.istio.as_deref().unwrap()).unwrap();
        let set = PolicySet::new(&docs).unwrap();
        assert!(
            set.verdict(&view("DELETE", "/admin/users/{id}"))
                .is_denied()
        );
        assert_eq!(
            set.verdict(&view("GET", "/admin/users/{id}")),
            Verdict::DefaultAllowed
        );
        assert_eq!(
            set.verdict(&view("DELETE", "/users/{id}")),
            Verdict::DefaultAllowed
        );
        let other = CallView {
            principal: Some("spiffe://cluster.local/ns/shop/sa/frontend".into()),
            ..view("DELETE", "/admin/users/{id}")
        };
        assert_eq!(set.verdict(&other), Verdict::DefaultAllowed);
        // Cilium's deny is the whole edge.
        let docs = parse_yaml(s.cilium.as_deref().unwrap()).unwrap();
        let set = PolicySet::new(&docs).unwrap();
        assert!(set.verdict(&view("GET", "/anything")).is_denied());
    }

    #[test]
    fn no_principal_or_hostile_names_give_no_wider_rule() {
        let s = deny_rules(&alert(Some("/x"), None));
        assert!(s.istio.is_none() && s.cilium.is_some(), "{s:?}");
        let s = deny_rules(&alert(
            Some("/x"),
            Some("spiffe://cluster.local/ns/shop/sa/*"),
        ));
        assert!(s.istio.is_none(), "{s:?}");
        let mut a = alert(Some("/x"), Some("spiffe://cluster.local/ns/shop/sa/cart"));
        a.source.service = "*".into();
        assert!(deny_rules(&a).cilium.is_none());
        // A route Istio would read as a wildcard: the rule falls back to the edge (a
        // narrower caller set than any path wildcard would give), and says so.
        let s = deny_rules(&alert(
            Some("/admin*"),
            Some("spiffe://cluster.local/ns/shop/sa/cart"),
        ));
        assert!(!s.istio.as_deref().unwrap().contains("/admin*"));
        assert!(s.notes.iter().any(|n| n.contains("whole edge")));
    }
}
