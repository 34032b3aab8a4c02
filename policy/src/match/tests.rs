//! Matching semantics per dialect, from what each one's documentation specifies,
//! including what must not match.

use eastwest_model::Protocol;
use proptest::prelude::*;

use super::istio::{string_matches, template_matches};
use super::{CallView, PolicySet, Verdict};
use crate::names::OVERFLOW_ROUTE;
use crate::testdata::{self, call};
use crate::{Format, compile, parse_yaml};

fn set(yaml: &str) -> PolicySet {
    PolicySet::new(&parse_yaml(yaml).unwrap()).unwrap()
}

/// users' Linkerd `Server` on port 8080, its `routes`, then `rest`.
fn linkerd(routes: &[String], rest: &str) -> PolicySet {
    set(&format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\n\
         metadata: {{name: users-http, namespace: shop}}\n\
         spec: {{podSelector: {{matchLabels: {{app: users}}}}, port: 8080}}\n---\n{}{rest}",
        routes.concat()
    ))
}

/// An `HTTPRoute` on users' Server with `rules` (a flow sequence's items).
fn route(name: &str, rules: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\n\
         metadata: {{name: {name}, namespace: shop}}\n\
         spec:\n  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: users-http}}]\n\
         \x20 rules: [{rules}]\n---\n"
    )
}

fn segs(p: &str) -> Vec<String> {
    p.split('/').skip(1).map(str::to_owned).collect()
}

#[test]
fn istio_strings_match_exact_prefix_suffix_and_presence() {
    assert!(string_matches("/api/*", "/api/x"));
    assert!(string_matches("*/admin", "/x/admin"));
    assert!(string_matches("*", "x"));
    assert!(!string_matches("*", ""));
    assert!(string_matches("/a", "/a"));
    assert!(!string_matches("/a", "/a/"));
    assert!(!string_matches("/api/*", "/ap"));
}

#[test]
fn istio_templates_match_one_or_many_segments() {
    assert!(template_matches("/users/{*}", &segs("/users/42")));
    assert!(!template_matches("/users/{*}", &segs("/users/42/orders")));
    assert!(!template_matches("/users/{*}", &segs("/users/")));
    assert!(!template_matches("/users/{*}", &segs("/users")));
    assert!(template_matches("/users/{**}", &segs("/users/42/orders")));
    assert!(template_matches("/a/{*}/b/{**}", &segs("/a/x/b/c/d")));
    assert!(!template_matches("/a/{*}/b/{**}", &segs("/a/x/c/d")));
}

#[test]
fn istio_allow_is_deny_by_default_for_its_workload_and_deny_comes_first() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: users, namespace: shop}
spec:
  selector: {matchLabels: {app: users}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/front*"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/users/{*}"], ports: ["8080"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
"#;
    let s = set(yaml);
    let ok = call("frontend", "users", "GET", "/users/{id}", 8080);
    assert!(matches!(s.verdict(&ok), Verdict::Allowed(_)));
    for denied in [
        call("cart", "users", "GET", "/users/{id}", 8080),
        call("frontend", "users", "POST", "/users/{id}", 8080),
        call("frontend", "users", "GET", "/users/{id}/x", 8080),
        call("frontend", "users", "GET", "/users/{id}", 9090),
        call("frontend", "users", "GET", "/admin/x", 8080),
        CallView {
            principal: None,
            ..ok.clone()
        },
        CallView {
            port: None,
            ..ok.clone()
        },
    ] {
        assert!(s.verdict(&denied).is_denied(), "{denied:?}");
    }
    // Another workload: no ALLOW applies, so default allow — but the mesh-wide DENY does.
    assert_eq!(
        s.verdict(&call("x", "cart", "GET", "/c", 1)),
        Verdict::DefaultAllowed
    );
    assert!(
        s.verdict(&call("x", "cart", "GET", "/admin", 1))
            .is_denied()
    );
    // A policy in another namespace does not apply.
    let other = CallView {
        destination_namespace: Some("other".into()),
        ..ok
    };
    assert_eq!(s.verdict(&other), Verdict::DefaultAllowed);
}

#[test]
fn istio_namespaces_come_from_the_principal() {
    let s = set(r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: users, namespace: shop}
spec:
  rules: [{from: [{source: {namespaces: ["shop"], notPrincipals: ["*/sa/evil"]}}]}]
"#);
    assert!(matches!(
        s.verdict(&call("a", "users", "GET", "/", 1)),
        Verdict::Allowed(_)
    ));
    assert!(s.verdict(&call("evil", "users", "GET", "/", 1)).is_denied());
    let foreign = CallView {
        principal: Some("spiffe://cluster.local/ns/other/sa/a".into()),
        ..call("a", "users", "GET", "/", 1)
    };
    assert!(s.verdict(&foreign).is_denied());
}

#[test]
fn networkpolicy_isolates_selected_pods_at_l4_only() {
    let s = set(r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: users, namespace: shop}
spec:
  podSelector: {matchLabels: {app: users}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: frontend}}
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}
      podSelector: {matchExpressions: [{key: app, operator: In, values: [backup]}]}
    ports: [{port: 8000, endPort: 8080, protocol: TCP}]
"#);
    // L4 only: any method and path pass.
    assert!(matches!(
        s.verdict(&call("frontend", "users", "DELETE", "/admin", 8080)),
        Verdict::Allowed(_)
    ));
    assert!(
        s.verdict(&call("frontend", "users", "GET", "/", 9000))
            .is_denied()
    );
    assert!(
        s.verdict(&call("cart", "users", "GET", "/", 8080))
            .is_denied()
    );
    // A bare podSelector means the policy's namespace only.
    let foreign = CallView {
        source_namespace: Some("ops".into()),
        ..call("frontend", "users", "GET", "/", 8080)
    };
    assert!(s.verdict(&foreign).is_denied());
    let backup = CallView {
        source_namespace: Some("ops".into()),
        ..call("backup", "users", "GET", "/", 8001)
    };
    assert!(matches!(s.verdict(&backup), Verdict::Allowed(_)));
    assert_eq!(
        s.verdict(&call("frontend", "cart", "GET", "/", 1)),
        Verdict::DefaultAllowed
    );
}

#[test]
fn cilium_l7_rules_are_full_regex_matches_and_deny_comes_first() {
    let s = set(r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: users, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: users}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:app": frontend}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules: {http: [{method: "GET", path: "/users/[^/]+"}]}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: evil}}]
"#);
    assert!(matches!(
        s.verdict(&call("frontend", "users", "GET", "/users/{id}", 8080)),
        Verdict::Allowed(_)
    ));
    for denied in [
        call("frontend", "users", "GET", "/users/{id}/x", 8080),
        call("frontend", "users", "GETX", "/users/{id}", 8080),
        call("frontend", "users", "GET", "/users/{id}", 8081),
        call("evil", "users", "GET", "/users/{id}", 8080),
    ] {
        assert!(s.verdict(&denied).is_denied(), "{denied:?}");
    }
    // fromEndpoints without a namespace label: the policy's namespace only.
    let foreign = CallView {
        source_namespace: Some("ops".into()),
        ..call("frontend", "users", "GET", "/users/1", 8080)
    };
    assert!(s.verdict(&foreign).is_denied());
}

#[test]
fn linkerd_routes_then_authorizations_decide() {
    let s = linkerd(
        &[route(
            "read",
            "{matches: [{method: GET, path: {type: PathPrefix, value: /users}}]}",
        )],
        r#"
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: read, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: read}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: front}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: front, namespace: shop}
spec: {identities: ["*.shop.serviceaccount.identity.linkerd.cluster.local"]}
"#,
    );
    assert!(matches!(
        s.verdict(&call("frontend", "users", "GET", "/users/{id}", 8080)),
        Verdict::Allowed(_)
    ));
    assert!(matches!(
        s.verdict(&call("frontend", "users", "GET", "/users", 8080)),
        Verdict::Allowed(_)
    ));
    for denied in [
        // PathPrefix is by whole segments.
        call("frontend", "users", "GET", "/usersX", 8080),
        call("frontend", "users", "POST", "/users", 8080),
        CallView {
            principal: None,
            ..call("frontend", "users", "GET", "/users", 8080)
        },
        CallView {
            principal: Some("spiffe://cluster.local/ns/ops/sa/frontend".into()),
            ..call("frontend", "users", "GET", "/users", 8080)
        },
    ] {
        assert!(s.verdict(&denied).is_denied(), "{denied:?}");
    }
    // Another port has no Server: the cluster default applies.
    assert_eq!(
        s.verdict(&call("x", "users", "GET", "/", 9090)),
        Verdict::DefaultAllowed
    );
}

#[test]
fn linkerd_picks_the_most_specific_route_whatever_the_document_order() {
    // The catch-all route comes first; an Exact match is still the one that applies.
    let s = linkerd(
        &[
            route(
                "any",
                "{matches: [{method: GET, path: {type: PathPrefix, value: /}}]}",
            ),
            route(
                "exact",
                "{matches: [{method: GET, path: {type: Exact, value: /users}}]}",
            ),
        ],
        r#"
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: any, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: any}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: frontend}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: exact, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: exact}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: admin}]
"#,
    );
    assert_eq!(
        s.verdict(&call("admin", "users", "GET", "/users", 8080)),
        Verdict::Allowed("AuthorizationPolicy shop/exact".into())
    );
    assert_eq!(
        s.verdict(&call("frontend", "users", "GET", "/orders", 8080)),
        Verdict::Allowed("AuthorizationPolicy shop/any".into())
    );
    // /users belongs to the Exact route, whose authorization names only the admin.
    assert!(
        s.verdict(&call("frontend", "users", "GET", "/users", 8080))
            .is_denied()
    );
    assert!(
        s.verdict(&call("admin", "users", "GET", "/orders", 8080))
            .is_denied()
    );
    // An overflowed call (path unknown) can only be the catch-all's.
    let overflow = call("frontend", "users", "GET", OVERFLOW_ROUTE, 8080);
    assert_eq!(
        s.verdict(&overflow),
        Verdict::Allowed("AuthorizationPolicy shop/any".into())
    );
}

#[test]
fn an_unknown_path_matches_only_conditions_every_path_meets() {
    let istio = |paths: &str| {
        set(&format!(
            r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: users, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: users}}}}
  action: ALLOW
  rules: [{{to: [{{operation: {{methods: [GET], {paths}}}}}]}}]
"#
        ))
    };
    let overflow = call("frontend", "users", "GET", OVERFLOW_ROUTE, 8080);
    for any in [
        "paths: ['*']",
        "paths: ['/*']",
        "paths: ['/{**}']",
        "ports: ['8080']",
    ] {
        assert!(
            matches!(istio(any).verdict(&overflow), Verdict::Allowed(_)),
            "{any}"
        );
    }
    for narrow in [
        "paths: ['/users/*']",
        "paths: ['/users/{*}']",
        "paths: ['/users']",
        "notPaths: ['/admin']",
    ] {
        assert!(istio(narrow).verdict(&overflow).is_denied(), "{narrow}");
    }
    let cilium = |http: &str| {
        set(&format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: users, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: users}}}}
  ingress: [{{toPorts: [{{ports: [{{port: "8080"}}], rules: {{http: [{http}]}}}}]}}]
"#
        ))
    };
    assert!(matches!(
        cilium("{method: ^GET$}").verdict(&overflow),
        Verdict::Allowed(_)
    ));
    for narrow in ["{method: ^GET$, path: /users.*}", "{method: ^POST$}"] {
        assert!(cilium(narrow).verdict(&overflow).is_denied(), "{narrow}");
    }
}

#[test]
fn generated_policies_allow_what_they_came_from_and_nothing_else() {
    let rules = testdata::shop();
    for format in Format::ALL {
        let docs = parse_yaml(&compile(&rules, format).to_yaml(&rules).unwrap()).unwrap();
        let s = PolicySet::new(&docs).unwrap();
        for w in &rules.workloads {
            for r in &w.rules {
                let c = CallView {
                    source_service: r.source.service.as_str().into(),
                    source_namespace: r.source.namespace.as_deref().map(Into::into),
                    principal: r.source.principals.iter().next().map(|p| p.into()),
                    destination_service: w.destination.service.as_str().into(),
                    destination_namespace: w.destination.namespace.as_deref().map(Into::into),
                    protocol: r.protocol,
                    method: r.method.as_str().into(),
                    route: r.route.as_str().into(),
                    port: r.port,
                };
                assert!(
                    matches!(s.verdict(&c), Verdict::Allowed(_)),
                    "{format:?} {c:?}"
                );
            }
        }
        // A caller that never called users, and a call on another port: denied everywhere.
        assert!(
            s.verdict(&call("cart", "users", "GET", "/users/{id}", 8080))
                .is_denied(),
            "{format:?}"
        );
        // Another port: Linkerd leaves ports without a Server to the cluster default
        // (`all-unauthenticated` unless the namespace sets `deny`).
        let other_port = s.verdict(&call("frontend", "users", "GET", "/users/{id}", 15000));
        if format == Format::Linkerd {
            assert_eq!(other_port, Verdict::DefaultAllowed);
        } else {
            assert!(other_port.is_denied(), "{format:?}");
        }
        // L7 dialects also refuse an unseen route of a known caller.
        if format != Format::NetworkPolicy {
            let admin = call("frontend", "users", "DELETE", "/users/{id}", 8080);
            assert!(s.verdict(&admin).is_denied(), "{format:?}");
        }
    }
}

proptest! {
    /// A one-segment template admits exactly the paths whose placeholder segment is one
    /// non-empty segment, like the Cilium regex compiled from the same route.
    #[test]
    fn istio_template_and_cilium_regex_agree(seg in "[a-z0-9./{}-]{0,8}", tail in prop::option::of("[a-z]{1,4}")) {
        let path = match &tail { Some(t) => format!("/users/{seg}/{t}"), None => format!("/users/{seg}") };
        let route = crate::names::path_regex(Protocol::Http, "/users/{id}").unwrap();
        let re = super::full_regex(&route).unwrap();
        prop_assert_eq!(template_matches("/users/{*}", &segs(&path)), re.is_match(&path));
    }

    /// Istio prefix patterns match exactly the values starting with the prefix.
    #[test]
    fn istio_prefix_is_starts_with(prefix in "[a-z/]{1,6}", value in "[a-z/]{0,8}") {
        prop_assert_eq!(string_matches(&format!("{prefix}*"), &value), value.starts_with(&prefix));
    }
}
