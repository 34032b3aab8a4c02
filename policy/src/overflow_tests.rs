//! An edge whose routes overflowed the collector's route cap: its calls carry the route
//! `{overflow}` (the real path is unknown). Every L7 dialect allows that caller the
//! method on any path, says so in the YAML header, and drift reports the rule as broad;
//! other callers and other methods stay denied.

use crate::history::CallGroup;
use crate::names::OVERFLOW_ROUTE;
use crate::testdata;
use crate::{CallView, Format, PolicySet, Rule, RuleSet, Verdict, compile, drift, parse_yaml};

/// The shop, where `frontend` also calls `users` on paths beyond the cap.
fn overflowed() -> RuleSet {
    let mut rules = testdata::shop();
    let users = &mut rules.workloads[1];
    let template = users.rules[0].clone();
    users.rules.push(Rule {
        route: OVERFLOW_ROUTE.into(),
        ..template
    });
    rules
}

fn view(src: &str, method: &str, route: &str) -> CallView {
    testdata::call(src, "users", method, route, 8080)
}

fn policies(format: Format) -> (String, PolicySet, Vec<crate::Document>) {
    let rules = overflowed();
    let yaml = compile(&rules, format).to_yaml(&rules).unwrap();
    let docs = parse_yaml(&yaml).unwrap();
    (yaml, PolicySet::new(&docs).unwrap(), docs)
}

#[test]
fn an_overflowed_edge_is_allowed_its_methods_on_any_path_and_nothing_more() {
    for format in [Format::Istio, Format::Cilium, Format::Linkerd] {
        let (yaml, set, _) = policies(format);
        let allowed = |c: &CallView| matches!(set.verdict(c), Verdict::Allowed(_));
        assert!(
            allowed(&view("frontend", "GET", OVERFLOW_ROUTE)),
            "{format:?}:\n{yaml}"
        );
        // Every observed operation is still allowed, the admin's too: on Linkerd the
        // any-path route must not capture the admin's DELETE.
        for r in &overflowed().workloads[1].rules {
            assert!(
                allowed(&view(&r.source.service, &r.method, &r.route)),
                "{format:?} {} {} {}",
                r.source.service,
                r.method,
                r.route
            );
        }
        // The wildcard is the overflowed caller's, for its method only.
        for denied in [
            view("admin", "GET", OVERFLOW_ROUTE),
            view("cart", "GET", OVERFLOW_ROUTE),
            view("frontend", "DELETE", OVERFLOW_ROUTE),
            view("admin", "GET", "/users/{id}"),
        ] {
            assert!(set.verdict(&denied).is_denied(), "{format:?} {denied:?}");
        }
        // The header says the rule is broader than observed.
        assert!(
            yaml.lines()
                .any(|l| l.starts_with('#') && l.contains("ANY path")),
            "{format:?}:\n{yaml}"
        );
    }
}

#[test]
fn drift_reports_the_any_path_rule_as_broad() {
    for format in [Format::Istio, Format::Cilium, Format::Linkerd] {
        let (_, set, docs) = policies(format);
        let group = CallGroup {
            view: view("frontend", "GET", OVERFLOW_ROUTE),
            source: "frontend.shop".into(),
            destination: "users.shop".into(),
            calls: 5.0,
            first_ns: 1,
            last_ns: 2,
            trace_ids: Vec::new(),
        };
        let Verdict::Allowed(rule) = set.verdict(&group.view) else {
            panic!("{format:?}: the overflowed call is allowed");
        };
        let report = drift(&docs, &set, &[group], 0);
        let broad = report.broad.iter().find(|b| b.rule == rule);
        assert!(
            broad.is_some_and(|b| b.why.contains("any")),
            "{format:?}: {rule} not broad in {:#?}",
            report.broad
        );
    }
}

#[test]
fn without_overflow_no_rule_is_widened() {
    let rules = testdata::shop();
    for format in Format::ALL {
        let yaml = compile(&rules, format).to_yaml(&rules).unwrap();
        assert!(!yaml.contains("ANY path"), "{format:?}:\n{yaml}");
        let set = PolicySet::new(&parse_yaml(&yaml).unwrap()).unwrap();
        // An overflow call on an edge that never overflowed is unknown: denied.
        if format != Format::NetworkPolicy {
            assert!(
                set.verdict(&view("frontend", "GET", OVERFLOW_ROUTE))
                    .is_denied(),
                "{format:?}"
            );
        }
    }
}
