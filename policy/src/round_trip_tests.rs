//! Every dialect's documents survive YAML: serialise → parse → equal, and parse as the
//! typed bindings they were built from.

use crate::testdata;
use crate::{Format, compile, parse_yaml};

#[test]
fn every_dialect_round_trips_through_yaml() {
    let rules = testdata::shop();
    for format in Format::ALL {
        let compiled = compile(&rules, format);
        assert!(!compiled.documents.is_empty(), "{format:?}");
        let yaml = compiled.to_yaml(&rules).unwrap();
        let back = parse_yaml(&yaml).unwrap();
        assert_eq!(back, compiled.documents, "{format:?}:\n{yaml}");
        assert!(back.iter().all(|d| d.format() == format));
    }
}

#[test]
fn istio_policy_names_principals_methods_template_paths_and_ports() {
    let yaml = compile(&testdata::shop(), Format::Istio)
        .to_yaml(&testdata::shop())
        .unwrap();
    for expected in [
        "apiVersion: security.istio.io/v1",
        "action: ALLOW",
        "- cluster.local/ns/shop/sa/frontend",
        "- /users/{*}",
        "- /hipstershop.CartService/GetCart",
        "- '5432'",
    ] {
        assert!(yaml.contains(expected), "{expected} missing:\n{yaml}");
    }
}

#[test]
fn linkerd_routes_of_different_callers_never_share_a_route() {
    let docs = compile(&testdata::shop(), Format::Linkerd).documents;
    let routes: Vec<_> = docs
        .iter()
        .filter_map(|d| match d {
            crate::Document::LinkerdRoute(r) => Some(r),
            _ => None,
        })
        .collect();
    // users:8080 has two caller sets (frontend; admin): two routes.
    let users: Vec<_> = routes
        .iter()
        .filter(|r| r.spec.parent_refs[0].name == "eastwest-users-8080")
        .collect();
    assert_eq!(users.len(), 2, "{routes:#?}");
}

#[test]
fn hostile_names_are_quoted_or_left_out() {
    let mut rules = testdata::shop();
    let users = &mut rules.workloads[1];
    users.rules[0].route = "/users/{id}\n- '*'".into();
    users.rules[1].source.service = "*".into();
    users.rules[2].source.principals = ["spiffe://cluster.local/ns/shop/sa/*".to_owned()].into();
    for format in Format::ALL {
        let compiled = compile(&rules, format);
        let yaml = compiled.to_yaml(&rules).unwrap();
        let back = parse_yaml(&yaml).unwrap();
        assert_eq!(back, compiled.documents, "{format:?}");
        // Notes quote the name in comments; no document may carry it.
        let body: String = yaml.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(
            !body.contains("'*'"),
            "{format:?} wrote a wildcard:\n{yaml}"
        );
        assert!(
            yaml.lines()
                .all(|l| l.starts_with('#') || !l.contains("{id}\n"))
        );
        assert!(!compiled.notes.is_empty(), "{format:?} left nothing out");
    }
}
