use proptest::prelude::*;

use super::*;
use crate::index::Names;

fn keys(names: &mut Names) -> (EdgeKey, NameId) {
    (names.intern_edge("web", "catalog"), names.intern("GET"))
}

fn learned<S: AsRef<str>>(routes: &[S], min_values: usize) -> (LearnedRoutes, EdgeKey, NameId) {
    let mut names = Names::default();
    let (edge, method) = keys(&mut names);
    let mut learned = LearnedRoutes::new(min_values);
    for r in routes {
        learned.learn(edge, method, r.as_ref());
    }
    (learned, edge, method)
}

fn cities(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("/api/items/city{i}")).collect()
}

#[test]
fn a_position_with_enough_values_becomes_a_parameter() {
    let routes = cities(10);
    let (l, edge, get) = learned(&routes, 10);
    assert!(l.has_params());
    assert_eq!(
        l.resolve(edge, get, "/api/items/berlin").as_deref(),
        Some("/api/items/{param}")
    );
    // Other lengths, prefixes, methods and edges are not covered.
    assert_eq!(l.resolve(edge, get, "/api/items/berlin/stock"), None);
    assert_eq!(l.resolve(edge, get, "/api/orders/berlin"), None);
    // Ids as `learned` issued them, then one more workload.
    let mut names = Names::default();
    keys(&mut names);
    let other_edge = names.intern_edge("web", "payments");
    assert_eq!(l.resolve(other_edge, get, "/api/items/berlin"), None);
}

#[test]
fn fewer_values_stay_literal() {
    let routes = cities(9);
    let (l, edge, get) = learned(&routes, 10);
    assert!(!l.has_params());
    assert_eq!(l.resolve(edge, get, "/api/items/berlin"), None);
}

#[test]
fn the_first_segment_never_becomes_a_parameter() {
    let routes: Vec<String> = (0..50).map(|i| format!("/svc{i}/health")).collect();
    let (l, edge, get) = learned(&routes, 10);
    assert!(!l.has_params());
    assert_eq!(l.resolve(edge, get, "/admin/health"), None);
}

#[test]
fn grpc_methods_and_tables_are_not_learned() {
    let routes: Vec<String> = (0..20).map(|i| format!("shop.Catalog/Get{i}")).collect();
    let (l, edge, get) = learned(&routes, 10);
    assert!(!l.has_params());
    assert_eq!(l.resolve(edge, get, "shop.Catalog/Delete"), None);
}

#[test]
fn two_varying_positions_both_generalise() {
    let mut routes = Vec::new();
    for u in 0..10 {
        routes.push(format!("/users/user{u}/orders/order{}", u * 7));
        routes.push(format!("/users/user{u}/profile"));
    }
    let (l, edge, get) = learned(&routes, 10);
    assert_eq!(
        l.resolve(edge, get, "/users/zoe/orders/o-1").as_deref(),
        Some("/users/{param}/orders/{param}")
    );
    assert_eq!(
        l.resolve(edge, get, "/users/zoe/profile").as_deref(),
        Some("/users/{param}/profile")
    );
    // The literal after the parameter still has to match.
    assert_eq!(l.resolve(edge, get, "/users/zoe/settings"), None);
}

#[test]
fn a_learned_template_carries_its_parameter_into_a_rebuild() {
    let (l, edge, get) = learned(&["/api/items/{param}"], 10);
    assert!(l.has_params());
    assert_eq!(
        l.resolve(edge, get, "/api/items/paris").as_deref(),
        Some("/api/items/{param}")
    );
}

#[test]
fn depth_is_bounded() {
    let deep = format!("/a{}", "/x".repeat(MAX_LEARNED_SEGMENTS));
    let (l, edge, get) = learned(&[&deep], 2);
    assert!(l.templates().is_empty());
    assert_eq!(l.resolve(edge, get, &deep), None);
}

fn route() -> impl Strategy<Value = String> {
    // Few distinct first segments and words, so that positions reach the threshold.
    let segment = prop_oneof![
        Just("api".to_string()),
        Just("items".to_string()),
        Just("{id}".to_string()),
        "[a-d][0-9]{0,1}",
    ];
    prop::collection::vec(segment, 1..5).prop_map(|s| format!("/{}", s.join("/")))
}

/// A template matches a route when literals are equal and parameters take any value.
fn matches(template: &str, route: &str) -> bool {
    let t: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let r: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    t.len() == r.len() && t.iter().zip(&r).all(|(t, r)| *t == PARAM_SEGMENT || t == r)
}

proptest! {
    #[test]
    fn learning_is_order_independent_and_templates_match_what_they_resolve(
        routes in prop::collection::vec(route(), 0..80),
        probes in prop::collection::vec(route(), 0..20),
        seed in any::<u64>(),
        min_values in 2usize..6,
    ) {
        let refs: Vec<&str> = routes.iter().map(String::as_str).collect();
        let (forward, edge, get) = learned(&refs, min_values);
        let mut shuffled = refs.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (other, _, _) = learned(&shuffled, min_values);
        prop_assert_eq!(forward.templates(), other.templates());
        for probe in probes.iter().chain(routes.iter()) {
            let resolved = forward.resolve(edge, get, probe);
            prop_assert_eq!(&resolved, &other.resolve(edge, get, probe));
            if let Some(template) = resolved {
                prop_assert!(matches(&template, probe), "{template} vs {probe}");
                prop_assert!(template.contains(PARAM_SEGMENT));
                // The first segment is never a parameter.
                let first_is_param = template.starts_with(&format!("/{}", PARAM_SEGMENT));
                prop_assert!(!first_is_param, "{}", template);
            }
        }
        // Every learned route is still covered, by literals or through a parameter.
        for r in &routes {
            prop_assert!(forward.covers(edge, get, r), "{r} lost");
        }
    }
}
