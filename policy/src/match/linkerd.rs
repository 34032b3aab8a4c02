//! Linkerd policy: a `Server` of the destination's namespace selecting its pods on the
//! call's port governs the call (with none, the cluster default, assumed
//! `all-unauthenticated`, allows it). With `HTTPRoute`s attached to the Server, an HTTP
//! request must match one (method; path `Exact`, `PathPrefix` by whole segments, or a
//! full `RegularExpression`), or it is refused. It is then authorized when an
//! `AuthorizationPolicy` targeting that route (the most specific match, as the proxy
//! ranks them: most path characters matched, then a named method; ties go to the
//! first document), the Server or the namespace has every required authentication
//! met: a `MeshTLSAuthentication` listing the caller's identity
//! (`sa.ns.serviceaccount.identity.linkerd.<td>`, `*`, or a `*.` suffix) or its
//! ServiceAccount / Namespace, or a ServiceAccount ref naming it. Without one, the
//! Server's `accessPolicy` decides (`deny` by default).

use super::selector::{self, pod_labels};
use super::{CallView, Layer, Verdict, full_regex, invalid, name, namespace};
use crate::PolicyError;
use crate::crd::linkerd::{
    AuthorizationPolicy, HTTPRoute, MeshTLSAuthentication, PathMatch, Server, TargetRef,
};
use crate::document::Document;
use crate::names::spiffe_account;

pub(super) struct Linkerd {
    servers: Vec<Server>,
    /// Routes with each match's compiled regex (for `RegularExpression` paths).
    routes: Vec<(HTTPRoute, Vec<Option<regex::Regex>>)>,
    authorizations: Vec<AuthorizationPolicy>,
    mesh_tls: Vec<MeshTLSAuthentication>,
}

impl Linkerd {
    pub fn new(docs: &[Document]) -> Result<Self, PolicyError> {
        let mut this = Self {
            servers: Vec::new(),
            routes: Vec::new(),
            authorizations: Vec::new(),
            mesh_tls: Vec::new(),
        };
        for d in docs {
            match d {
                Document::LinkerdServer(s) => this.servers.push(s.clone()),
                Document::LinkerdRoute(r) => {
                    let doc = format!("HTTPRoute {}/{}", namespace(&r.metadata), name(&r.metadata));
                    let mut res = Vec::new();
                    for m in r
                        .spec
                        .rules
                        .iter()
                        .flatten()
                        .flat_map(|r| r.matches.iter().flatten())
                    {
                        res.push(match &m.path {
                            Some(PathMatch {
                                kind: Some(k),
                                value,
                            }) if k == "RegularExpression" => Some(
                                full_regex(value.as_deref().unwrap_or(""))
                                    .map_err(|e| invalid(&doc, e))?,
                            ),
                            _ => None,
                        });
                    }
                    this.routes.push((r.clone(), res));
                }
                Document::LinkerdAuthorization(a) => this.authorizations.push(a.clone()),
                Document::LinkerdMeshTls(m) => this.mesh_tls.push(m.clone()),
                _ => {}
            }
        }
        Ok(this)
    }

    fn authenticated(&self, r: &TargetRef, ns: &str, call: &CallView) -> bool {
        let Some(account) = call.principal.as_deref().and_then(spiffe_account) else {
            return false;
        };
        match r.kind.as_str() {
            "MeshTLSAuthentication" => {
                let m_ns = r.namespace.clone().unwrap_or_else(|| ns.to_owned());
                self.mesh_tls
                    .iter()
                    .filter(|m| name(&m.metadata) == r.name && namespace(&m.metadata) == m_ns)
                    .any(|m| mesh_tls_matches(m, &m_ns, account, call))
            }
            "ServiceAccount" => {
                r.name == account.1 && r.namespace.as_deref().unwrap_or(ns) == account.0
            }
            // NetworkAuthentication names client networks: unknown here.
            _ => false,
        }
    }
}

fn linkerd_identity(call: &CallView, (ns, sa): (&str, &str)) -> Option<String> {
    let td = call
        .principal
        .as_deref()?
        .strip_prefix("spiffe://")?
        .split('/')
        .next()?;
    Some(format!("{sa}.{ns}.serviceaccount.identity.linkerd.{td}"))
}

fn mesh_tls_matches(
    m: &MeshTLSAuthentication,
    m_ns: &str,
    account: (&str, &str),
    call: &CallView,
) -> bool {
    let identity = linkerd_identity(call, account).unwrap_or_default();
    let by_identity = m.spec.identities.iter().flatten().any(|i| {
        i == "*"
            || *i == identity
            || i.strip_prefix('*')
                .is_some_and(|suffix| suffix.starts_with('.') && identity.ends_with(suffix))
    });
    let by_ref = m
        .spec
        .identity_refs
        .iter()
        .flatten()
        .any(|r| match r.kind.as_str() {
            "ServiceAccount" => {
                (r.name == account.1 || r.name == "*")
                    && r.namespace.as_deref().unwrap_or(m_ns) == account.0
            }
            "Namespace" => r.name == account.0 || r.name == "*",
            _ => false,
        });
    by_identity || by_ref
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// How specifically `route` matches the call, as Linkerd ranks matches (characters of
/// the path matched, then whether the match names a method); `None` when it does not.
fn route_match(
    route: &(HTTPRoute, Vec<Option<regex::Regex>>),
    call: &CallView,
) -> Option<(usize, bool)> {
    let unknown = call.path_unknown();
    let path = call.path();
    if path.is_none() && !unknown {
        return None;
    }
    let path = path.unwrap_or_default();
    let rules = route.0.spec.rules.iter().flatten();
    // A rule without matches matches every request (Gateway API: `PathPrefix /`).
    let mut best = rules
        .clone()
        .any(|r| r.matches.as_ref().is_none_or(|m| m.is_empty()))
        .then_some((1, false));
    let matches = rules.flat_map(|r| r.matches.iter().flatten());
    for (m, re) in matches.zip(&route.1) {
        if m.method.as_deref().is_some_and(|x| x != call.method) {
            continue;
        }
        let len = match &m.path {
            None => Some(1),
            Some(p) => match (
                p.kind.as_deref().unwrap_or("PathPrefix"),
                p.value.as_deref().unwrap_or("/"),
            ) {
                // An unknown path meets only the prefix every path has.
                ("PathPrefix", v) if unknown => v.trim_end_matches('/').is_empty().then_some(1),
                _ if unknown => None,
                ("Exact", v) => (v == path).then_some(path.len()),
                ("PathPrefix", v) => {
                    prefix_matches(v, &path).then(|| v.trim_end_matches('/').len().max(1))
                }
                ("RegularExpression", _) => re
                    .as_ref()
                    .is_some_and(|re| re.is_match(&path))
                    .then_some(path.len()),
                _ => None,
            },
        };
        if let Some(len) = len {
            best = best.max(Some((len, m.method.is_some())));
        }
    }
    best
}

impl Layer for Linkerd {
    fn verdict(&self, call: &CallView) -> Verdict {
        let Some(ns) = call.destination_namespace.as_deref() else {
            return Verdict::DefaultAllowed;
        };
        let labels = pod_labels(&call.destination_service);
        let Some(server) = self.servers.iter().find(|s| {
            namespace(&s.metadata) == ns
                && call
                    .port
                    .is_some_and(|p| s.spec.port.as_u64() == Some(u64::from(p)))
                && selector::crd(&s.spec.pod_selector, &labels, |k| k)
        }) else {
            return Verdict::DefaultAllowed;
        };
        let server_name = name(&server.metadata);
        let attached: Vec<_> = self
            .routes
            .iter()
            .filter(|(r, _)| namespace(&r.metadata) == ns)
            .filter(|(r, _)| {
                r.spec.parent_refs.iter().any(|p| {
                    p.name == server_name && p.kind.as_deref().is_none_or(|k| k == "Server")
                })
            })
            .collect();
        let mut route = None;
        if call.is_http() && !attached.is_empty() {
            // The most specific match wins; among equals, the first in document order.
            let mut best: Option<((usize, bool), &HTTPRoute)> = None;
            for r in &attached {
                if let Some(rank) = route_match(r, call)
                    && best.is_none_or(|(b, _)| rank > b)
                {
                    best = Some((rank, &r.0));
                }
            }
            match best {
                Some((_, r)) => route = Some(name(&r.metadata)),
                None => {
                    return Verdict::Denied(format!(
                        "no HTTPRoute of Server {ns}/{server_name} matches"
                    ));
                }
            }
        }
        for a in self
            .authorizations
            .iter()
            .filter(|a| namespace(&a.metadata) == ns)
        {
            let t = &a.spec.target_ref;
            let targets = match t.kind.as_str() {
                "Server" => t.name == server_name,
                "HTTPRoute" => route.as_deref() == Some(t.name.as_str()),
                "Namespace" => t.name == ns,
                _ => false,
            };
            if targets
                && !a.spec.required_authentication_refs.is_empty()
                && a.spec
                    .required_authentication_refs
                    .iter()
                    .all(|r| self.authenticated(r, ns, call))
            {
                return Verdict::Allowed(format!("AuthorizationPolicy {ns}/{}", name(&a.metadata)));
            }
        }
        match server.spec.access_policy.as_deref().unwrap_or("deny") {
            "all-unauthenticated" | "audit" => {
                Verdict::Allowed(format!("Server {ns}/{server_name}"))
            }
            "all-authenticated" | "cluster-authenticated" if call.principal.is_some() => {
                Verdict::Allowed(format!("Server {ns}/{server_name}"))
            }
            _ => Verdict::Denied(format!(
                "no AuthorizationPolicy admits the caller on Server {ns}/{server_name}"
            )),
        }
    }
}

/// A route some request of any path matches (no path condition, or `PathPrefix /`).
fn any_path_route(r: &HTTPRoute) -> bool {
    r.spec.rules.iter().flatten().any(|rule| {
        rule.matches.as_ref().is_none_or(|m| m.is_empty())
            || rule.matches.iter().flatten().any(|m| {
                m.path.as_ref().is_none_or(|p| {
                    p.kind.as_deref().unwrap_or("PathPrefix") == "PathPrefix"
                        && p.value
                            .as_deref()
                            .unwrap_or("/")
                            .trim_end_matches('/')
                            .is_empty()
                })
            })
    })
}

fn broad_mesh_tls(m: &MeshTLSAuthentication) -> bool {
    m.spec.identities.iter().flatten().any(|i| i.contains('*'))
        || (m.spec.identity_refs.iter().flatten()).any(|r| r.kind == "Namespace" || r.name == "*")
}

/// Every authorization, named as [`Verdict::Allowed`] names it, with why it is broad.
pub(super) fn rules(docs: &[Document]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for d in docs {
        match d {
            Document::LinkerdAuthorization(a) => {
                let ns = namespace(&a.metadata);
                let broad_auth = a.spec.required_authentication_refs.iter().any(|r| {
                    docs.iter().any(|d| {
                        matches!(d, Document::LinkerdMeshTls(m)
                            if name(&m.metadata) == r.name && broad_mesh_tls(m))
                    })
                });
                let any_path = a.spec.target_ref.kind == "HTTPRoute"
                    && docs.iter().any(|d| {
                        matches!(d, Document::LinkerdRoute(r)
                            if name(&r.metadata) == a.spec.target_ref.name
                                && namespace(&r.metadata) == ns
                                && any_path_route(r))
                    });
                let why = match (broad_auth, a.spec.target_ref.kind.as_str()) {
                    (true, "HTTPRoute") if any_path => {
                        Some("wildcard or namespace-wide identities, any path")
                    }
                    (true, "HTTPRoute") => Some("wildcard or namespace-wide identities"),
                    (true, _) => Some("wildcard identities on a whole Server or namespace"),
                    (false, "HTTPRoute") if any_path => Some("any path"),
                    (false, "HTTPRoute") => None,
                    (false, _) => Some("a whole Server or namespace, any path"),
                };
                let id = format!("AuthorizationPolicy {ns}/{}", name(&a.metadata));
                out.push((id, why.map(str::to_owned)));
            }
            Document::LinkerdServer(s)
                if s.spec.access_policy.as_deref().is_some_and(|p| p != "deny") =>
            {
                let id = format!("Server {}/{}", namespace(&s.metadata), name(&s.metadata));
                out.push((id, Some("the Server admits every caller".into())));
            }
            _ => {}
        }
    }
    out
}
