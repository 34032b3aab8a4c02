//! Linkerd: per destination workload and port a `Server` (deny by default); the HTTP
//! operations grouped by the exact set of callers allowed them, each group an
//! `HTTPRoute` with an `AuthorizationPolicy` requiring a `MeshTLSAuthentication` of
//! those callers' service accounts. Non-HTTP callers are authorized on the `Server`.
//! Routes never overlap between groups, so the route Linkerd picks is the one whose
//! authorization applies.

use std::collections::{BTreeMap, BTreeSet};

use eastwest_model::Protocol;

use super::{app_labels, meta, placed};
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

#[derive(Default)]
struct Port {
    grpc_only: bool,
    http: BTreeMap<Op, BTreeSet<Account>>,
    l4: BTreeSet<Account>,
}

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
        let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
        for r in &w.rules {
            let skip = |why: &str, notes: &mut Vec<String>| {
                notes.push(format!(
                    "{} -> {} {} {}: {why}; not allowed",
                    r.source.key, w.destination.key, r.method, r.route
                ))
            };
            let accounts: BTreeSet<Account> = r
                .source
                .principals
                .iter()
                .filter_map(|p| names::spiffe_account(p))
                .map(|(n, s)| (n.to_owned(), s.to_owned()))
                .collect();
            if accounts.is_empty() {
                skip("the caller presented no Kubernetes SPIFFE identity", notes);
                continue;
            }
            let Some(port) = r.port else {
                skip("no known port (a Server needs one)", notes);
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
                    let op = names::method(&r.method).and_then(|m| {
                        if names::is_template(r.protocol, &r.route) {
                            names::path_regex(r.protocol, &r.route)
                                .map(|re| (m.to_owned(), "RegularExpression", re))
                        } else {
                            names::plain_path(r.protocol, &r.route)
                                .map(|path| (m.to_owned(), "Exact", path))
                        }
                    });
                    let Some(op) = op else {
                        skip("method or route cannot be written exactly", notes);
                        continue;
                    };
                    p.http.entry(op).or_default().extend(accounts);
                }
                _ => {
                    p.grpc_only = false;
                    p.l4.extend(accounts);
                }
            }
        }
        for (port, p) in ports {
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
