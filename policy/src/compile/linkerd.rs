//! Linkerd: per destination workload and port a `Server` (deny by default); the HTTP
//! operations grouped by the exact set of callers allowed them, each group an
//! `HTTPRoute` with an `AuthorizationPolicy` requiring a `MeshTLSAuthentication` of
//! those callers' service accounts. Non-HTTP callers are authorized on the `Server`.
//! Routes never overlap between groups, so the route Linkerd picks is the one whose
//! authorization applies — except an overflowed edge's `PathPrefix /` route, whose
//! callers are therefore also authorized on every route of the same method and port.

use std::collections::{BTreeMap, BTreeSet};

use eastwest_model::Protocol;

use super::{PathRule, app_labels, destinations, meta};
use crate::crd::Selector;
use crate::crd::linkerd::{
    AuthorizationPolicy, AuthorizationPolicySpec, GROUP, HTTPRoute, HTTPRouteSpec,
    MeshTLSAuthentication, MeshTLSAuthenticationSpec, ParentRef, PathMatch, RouteMatch, RouteRule,
    Server, ServerSpec, TargetRef,
};
use crate::document::Document;
use crate::names;
use crate::rules::RuleSet;

/// (namespace, service account) of a caller.
type Account = (String, String);
/// (method, path match type, value).
type Op = (String, &'static str, String);

/// The path match of an overflowed edge's methods: every path.
const ANY_PATH: (&str, &str) = ("PathPrefix", "/");

#[derive(Default)]
struct Port {
    grpc_only: bool,
    http: BTreeMap<Op, BTreeSet<Account>>,
    l4: BTreeSet<Account>,
}

pub(super) fn compile(rules: &RuleSet, notes: &mut Vec<String>) -> Vec<Document> {
    let mut docs = Vec::new();
    for d in destinations(rules, notes) {
        let (ns, app) = (d.ns, d.app);
        let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
        for r in &d.workload.rules {
            let accounts: BTreeSet<Account> = r
                .source
                .principals
                .iter()
                .filter_map(|p| names::spiffe_account(p))
                .map(|(n, s)| (n.to_owned(), s.to_owned()))
                .collect();
            if accounts.is_empty() {
                d.skip(
                    r,
                    "the caller presented no Kubernetes SPIFFE identity",
                    notes,
                );
                continue;
            }
            let Some(port) = r.port else {
                d.skip(r, "no known port (a Server needs one)", notes);
                continue;
            };
            let fresh = ports.is_empty() || !ports.contains_key(&port);
            let p = ports.entry(port).or_default();
            if fresh {
                p.grpc_only = true;
            }
            match r.protocol {
                Protocol::Http | Protocol::Grpc => {
                    p.grpc_only &= r.protocol == Protocol::Grpc;
                    let path = |protocol, route: &str| {
                        if names::is_template(protocol, route) {
                            names::path_regex(protocol, route).map(|re| ("RegularExpression", re))
                        } else {
                            names::plain_path(protocol, route).map(|path| ("Exact", path))
                        }
                    };
                    let Some((m, path)) = d.http(r, notes, path) else {
                        continue;
                    };
                    let (kind, value) = match path {
                        PathRule::Exact(p) => p,
                        PathRule::Any => (ANY_PATH.0, ANY_PATH.1.to_owned()),
                    };
                    p.http
                        .entry((m.to_owned(), kind, value))
                        .or_default()
                        .extend(accounts);
                }
                _ => {
                    p.grpc_only = false;
                    p.l4.extend(accounts);
                }
            }
        }
        for (port, mut p) in ports {
            any_path_callers_everywhere(&mut p.http);
            let server = names::object_name(&["eastwest", app, &port.to_string()]);
            let mut s = Server::new(
                &server,
                ServerSpec {
                    pod_selector: Selector::labels(app_labels(app)),
                    port: serde_json::Value::from(port),
                    proxy_protocol: p.grpc_only.then(|| "gRPC".to_owned()),
                    access_policy: Some("deny".into()),
                },
            );
            s.metadata = meta(server.clone(), ns);
            docs.push(Document::LinkerdServer(s));
            let server_ref = TargetRef {
                group: Some(GROUP.into()),
                kind: "Server".into(),
                name: server.clone(),
                namespace: None,
            };
            if !p.l4.is_empty() {
                let name = names::object_name(&[&server, "l4"]);
                docs.push(mesh_tls(&name, ns, &p.l4));
                docs.push(authorization(&name, ns, server_ref.clone()));
            }
            let mut groups: BTreeMap<BTreeSet<Account>, Vec<Op>> = BTreeMap::new();
            for (op, accounts) in p.http {
                groups.entry(accounts).or_default().push(op);
            }
            for (i, (accounts, ops)) in groups.into_iter().enumerate() {
                let name = names::object_name(&[&server, &format!("r{i}")]);
                let route = HTTPRouteSpec {
                    parent_refs: vec![ParentRef {
                        group: Some(GROUP.into()),
                        kind: Some("Server".into()),
                        name: server.clone(),
                    }],
                    rules: Some(vec![RouteRule {
                        matches: Some(
                            ops.into_iter()
                                .map(|(method, kind, value)| RouteMatch {
                                    method: Some(method),
                                    path: Some(PathMatch {
                                        kind: Some(kind.into()),
                                        value: Some(value),
                                    }),
                                })
                                .collect(),
                        ),
                    }]),
                };
                let mut r = HTTPRoute::new(&name, route);
                r.metadata = meta(name.clone(), ns);
                docs.push(Document::LinkerdRoute(r));
                docs.push(mesh_tls(&name, ns, &accounts));
                docs.push(authorization(
                    &name,
                    ns,
                    TargetRef {
                        group: Some(GROUP.into()),
                        kind: "HTTPRoute".into(),
                        name: name.clone(),
                        namespace: None,
                    },
                ));
            }
        }
    }
    docs
}

/// Linkerd picks the route whose path matches longest, so a request of an any-path
/// caller may land on another caller set's route of the same method: its callers are
/// authorized on those too, which keeps every choice of route correct.
fn any_path_callers_everywhere(http: &mut BTreeMap<Op, BTreeSet<Account>>) {
    let any: Vec<(String, BTreeSet<Account>)> = http
        .iter()
        .filter(|((_, kind, value), _)| (*kind, value.as_str()) == ANY_PATH)
        .map(|((m, _, _), accounts)| (m.clone(), accounts.clone()))
        .collect();
    for (method, callers) in any {
        for ((m, _, _), accounts) in http.iter_mut() {
            if *m == method {
                accounts.extend(callers.iter().cloned());
            }
        }
    }
}

fn mesh_tls(name: &str, ns: &str, accounts: &BTreeSet<Account>) -> Document {
    let spec = MeshTLSAuthenticationSpec {
        identities: None,
        identity_refs: Some(
            accounts
                .iter()
                .map(|(n, s)| TargetRef {
                    group: None,
                    kind: "ServiceAccount".into(),
                    name: s.clone(),
                    namespace: Some(n.clone()),
                })
                .collect(),
        ),
    };
    let mut m = MeshTLSAuthentication::new(name, spec);
    m.metadata = meta(name.to_owned(), ns);
    Document::LinkerdMeshTls(m)
}

fn authorization(name: &str, ns: &str, target: TargetRef) -> Document {
    let spec = AuthorizationPolicySpec {
        target_ref: target,
        required_authentication_refs: vec![TargetRef {
            group: Some(GROUP.into()),
            kind: "MeshTLSAuthentication".into(),
            name: name.to_owned(),
            namespace: None,
        }],
    };
    let mut a = AuthorizationPolicy::new(name, spec);
    a.metadata = meta(name.to_owned(), ns);
    Document::LinkerdAuthorization(a)
}
