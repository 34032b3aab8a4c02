//! Route templates and the per-edge route cap.

use std::collections::{HashMap, HashSet};

use super::attributes::truncate;

/// Route used once an edge has more distinct routes than the cap allows.
pub const OVERFLOW_ROUTE: &str = "{overflow}";

/// Turns a concrete path into a template: numbers, UUIDs, long hex strings and e-mail
/// addresses become `{id}`, `{uuid}`, `{hex}`, `{email}`; the query string and fragment
/// are dropped. Idempotent.
pub fn template_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(template_segment(segment));
        if out.len() > super::attributes::MAX_FIELD_BYTES {
            break;
        }
    }
    truncate(&out)
}

fn template_segment(segment: &str) -> &str {
    if segment.is_empty() || segment.starts_with('{') && segment.ends_with('}') {
        return segment;
    }
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        return "{id}";
    }
    if is_uuid(segment) {
        return "{uuid}";
    }
    if segment.len() >= 16 && segment.bytes().all(|b| b.is_ascii_hexdigit()) {
        return "{hex}";
    }
    if let Some((user, domain)) = segment.split_once('@')
        && !user.is_empty()
        && domain.contains('.')
    {
        return "{email}";
    }
    segment
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Caps distinct routes per edge (and the number of edges it tracks), so a flood of
/// unique paths cannot grow memory; overflow is reported as [`OVERFLOW_ROUTE`].
#[derive(Debug, Default)]
pub struct RouteCap {
    routes: HashMap<(String, String), HashSet<String>>,
    max_routes_per_edge: usize,
    max_edges: usize,
    pub overflowed: u64,
}

impl RouteCap {
    pub fn new(max_routes_per_edge: usize, max_edges: usize) -> Self {
        Self {
            routes: HashMap::new(),
            max_routes_per_edge,
            max_edges,
            overflowed: 0,
        }
    }

    /// The route to report for this edge: itself while under the cap, else overflow.
    pub fn admit(&mut self, source: &str, destination: &str, route: String) -> String {
        let key = (source.to_string(), destination.to_string());
        if !self.routes.contains_key(&key) && self.routes.len() >= self.max_edges {
            self.overflowed += 1;
            return OVERFLOW_ROUTE.to_string();
        }
        let routes = self.routes.entry(key).or_default();
        if routes.contains(&route) {
            return route;
        }
        if routes.len() >= self.max_routes_per_edge {
            self.overflowed += 1;
            return OVERFLOW_ROUTE.to_string();
        }
        routes.insert(route.clone());
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn templates_ids_uuids_hex_and_emails() {
        assert_eq!(template_path("/users/42/orders"), "/users/{id}/orders");
        assert_eq!(
            template_path("/o/123e4567-e89b-12d3-a456-426614174000?x=1"),
            "/o/{uuid}"
        );
        assert_eq!(template_path("/blob/deadbeefdeadbeef00"), "/blob/{hex}");
        assert_eq!(template_path("/u/alice@example.com"), "/u/{email}");
        assert_eq!(template_path("/api/v1/cart"), "/api/v1/cart");
        assert_eq!(template_path(""), "/");
    }

    #[test]
    fn route_cap_overflows_per_edge() {
        let mut cap = RouteCap::new(2, 10);
        assert_eq!(cap.admit("a", "b", "/1".into()), "/1");
        assert_eq!(cap.admit("a", "b", "/2".into()), "/2");
        assert_eq!(cap.admit("a", "b", "/1".into()), "/1");
        assert_eq!(cap.admit("a", "b", "/3".into()), OVERFLOW_ROUTE);
        assert_eq!(cap.admit("a", "c", "/3".into()), "/3");
        assert_eq!(cap.overflowed, 1);
    }

    proptest! {
        #[test]
        fn template_path_is_idempotent_and_bounded(path in ".{0,600}") {
            let once = template_path(&path);
            prop_assert_eq!(template_path(&once), once.clone());
            prop_assert!(once.len() <= super::super::attributes::MAX_FIELD_BYTES);
        }
    }
}
