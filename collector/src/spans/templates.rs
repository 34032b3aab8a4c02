//! The route templates each workload's own server spans report (`http.route`), so that a
//! raw path into that workload — a client that records the URL, a request rejected
//! before routing, an access-log line — is named by the template its router would have
//! matched, not by a guess.
//!
//! Matching uses `matchit` (the radix-tree router behind axum): it has the semantics of
//! real routers (a static segment wins over a parameter, with backtracking), and every
//! path-template syntax reported in `http.route` maps onto its `{param}` form. Templates
//! whose first segment is a parameter, and catch-alls, are not used for matching: one
//! forged server span could otherwise name every path into its workload.

use std::collections::{HashMap, HashSet};

use matchit::Router;

use super::Hasher;

/// One workload's templates.
struct Known {
    router: Router<String>,
    templates: HashSet<String, Hasher>,
    /// Arrival sequence of the last template reported (eviction order).
    last_seen: u64,
}

/// Templates per destination workload key, bounded in workloads, in templates per
/// workload, and in templates overall (forged server spans of many workloads cannot
/// multiply the two).
pub struct RouteTemplates {
    known: HashMap<String, Known, Hasher>,
    max_workloads: usize,
    max_templates: usize,
    max_total: usize,
    total: usize,
    seq: u64,
}

impl RouteTemplates {
    /// At most `max_workloads` workloads, `max_templates` templates each, and
    /// `max_workloads` templates in all.
    pub fn new(max_workloads: usize, max_templates: usize) -> Self {
        Self {
            known: HashMap::default(),
            max_workloads: max_workloads.max(1),
            max_templates: max_templates.max(1),
            max_total: max_workloads.max(max_templates).max(1),
            total: 0,
            seq: 0,
        }
    }

    /// Workloads whose templates are kept.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// `workload` (a workload key) reported `template` for one of its own requests.
    pub fn learn(&mut self, workload: &str, template: &str) {
        self.seq += 1;
        if let Some(known) = self.known.get_mut(workload) {
            known.last_seen = self.seq;
            if known.templates.contains(template) || known.templates.len() >= self.max_templates {
                return;
            }
        }
        if self.total >= self.max_total
            || (!self.known.contains_key(workload) && self.known.len() >= self.max_workloads)
        {
            self.evict_oldest_half();
        }
        let known = self
            .known
            .entry(workload.to_string())
            .or_insert_with(|| Known {
                router: Router::new(),
                templates: HashSet::default(),
                last_seen: self.seq,
            });
        known.templates.insert(template.to_string());
        self.total += 1;
        if let Some(route) = router_route(template) {
            // A conflict is a template equal to one known up to parameter names: the
            // first one reported names the route.
            let _ = known.router.insert(route, template.to_string());
        }
    }

    /// The known template of `workload` that `path` (normalised, segments as the router
    /// sees them) matches.
    pub fn resolve(&self, workload: &str, path: &str) -> Option<&str> {
        let known = self.known.get(workload)?;
        known.router.at(path).ok().map(|m| m.value.as_str())
    }

    /// Amortised O(1) bound: when full, the half reported least recently goes.
    fn evict_oldest_half(&mut self) {
        let mut seen: Vec<u64> = self.known.values().map(|k| k.last_seen).collect();
        let middle = seen.len() / 2;
        let (_, cut, _) = seen.select_nth_unstable(middle);
        let cut = *cut;
        self.known.retain(|_, k| k.last_seen > cut);
        self.total = self.known.values().map(|k| k.templates.len()).sum();
    }
}

/// `template` in matchit's syntax, parameters named by position; `None` for templates
/// not used for matching (first segment a parameter, catch-alls, parameters inside a
/// segment).
fn router_route(template: &str) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 8);
    for (i, segment) in template.split('/').filter(|s| !s.is_empty()).enumerate() {
        out.push('/');
        match segment_kind(segment) {
            SegmentKind::Param if i == 0 => return None,
            SegmentKind::Param => out.push_str(&format!("{{p{i}}}")),
            SegmentKind::Unsupported => return None,
            SegmentKind::Literal => out.push_str(segment),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

enum SegmentKind {
    Literal,
    Param,
    Unsupported,
}

/// Parameter spellings of common routers: `{id}` / `{id:int}` (OpenAPI, Spring, ASP.NET,
/// gorilla), `:id` (Express, Gin, Rails), `<id>` / `<int:id>` (Flask), `[id]` (Next.js).
/// Catch-alls (`*`, `**`, `{*rest}`, `*rest`, `[...slug]`, `{rest=**}`) and anything
/// else holding a brace are unsupported.
fn segment_kind(segment: &str) -> SegmentKind {
    let inner = |open: char, close: char| {
        segment
            .strip_prefix(open)
            .and_then(|s| s.strip_suffix(close))
    };
    let name = inner('{', '}')
        .or_else(|| inner('<', '>'))
        .or_else(|| inner('[', ']'))
        .or_else(|| segment.strip_prefix(':'));
    match name {
        Some(n) if n.is_empty() || n.starts_with('*') || n.starts_with("...") => {
            SegmentKind::Unsupported
        }
        Some(n) if n.contains(['{', '}', '*', '/', '=']) => SegmentKind::Unsupported,
        Some(_) => SegmentKind::Param,
        None if segment.starts_with('*') || segment.contains(['{', '}']) => {
            SegmentKind::Unsupported
        }
        None => SegmentKind::Literal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn learned(templates: &[&str]) -> RouteTemplates {
        let mut t = RouteTemplates::new(10, 10);
        for template in templates {
            t.learn("items.shop", template);
        }
        t
    }

    #[test]
    fn raw_paths_find_the_template_of_their_route() {
        let t = learned(&[
            "/api/v1/x/items/{name}",
            "/api/v1/x/items/new",
            "/users/:id/orders",
            "/files/<int:n>",
            "/",
        ]);
        let at = |p| t.resolve("items.shop", p);
        assert_eq!(
            at("/api/v1/x/items/New%20York"),
            Some("/api/v1/x/items/{name}")
        );
        assert_eq!(at("/api/v1/x/items/{name}"), Some("/api/v1/x/items/{name}"));
        assert_eq!(at("/api/v1/x/items/new"), Some("/api/v1/x/items/new"));
        assert_eq!(at("/users/42/orders"), Some("/users/:id/orders"));
        assert_eq!(at("/files/7"), Some("/files/<int:n>"));
        assert_eq!(at("/"), Some("/"));
        assert_eq!(at("/admin/users"), None);
        assert_eq!(at("/api/v1/x/items/a/b"), None);
        assert_eq!(t.resolve("other.shop", "/files/7"), None);
    }

    #[test]
    fn catch_alls_and_leading_parameters_are_not_matched() {
        let t = learned(&["/{tenant}/orders", "/static/{*path}", "/{a}/{b}", "/x/*"]);
        assert_eq!(t.resolve("items.shop", "/admin/orders"), None);
        assert_eq!(t.resolve("items.shop", "/static/a.js"), None);
        assert_eq!(t.resolve("items.shop", "/admin/users"), None);
        assert_eq!(t.resolve("items.shop", "/x/y"), None);
    }

    #[test]
    fn the_first_template_of_a_route_names_it() {
        let t = learned(&["/items/{id}", "/items/{name}"]);
        assert_eq!(t.resolve("items.shop", "/items/9"), Some("/items/{id}"));
    }

    #[test]
    fn bounded_in_workloads_and_templates() {
        let mut t = RouteTemplates::new(4, 2);
        for i in 0..3 {
            t.learn("a", &format!("/r{i}/{{x}}"));
        }
        assert_eq!(t.resolve("a", "/r1/v"), Some("/r1/{x}"));
        assert_eq!(t.resolve("a", "/r2/v"), None, "over the per-workload cap");
        for w in 0..20 {
            t.learn(&format!("w{w}"), "/p/{x}");
            t.learn(&format!("w{w}"), "/q/{x}");
            assert!(t.len() <= 4);
            assert!(t.total <= 4, "{} templates held", t.total);
        }
        assert_eq!(t.resolve("w19", "/p/1"), Some("/p/{x}"));
        assert_eq!(t.resolve("w19", "/q/1"), Some("/q/{x}"));
    }

    proptest! {
        /// A path made from a template by filling each parameter with any one segment
        /// resolves to a template that routes it: that one, or one with a static
        /// segment where it has a parameter.
        #[test]
        fn filled_templates_resolve(
            shape in proptest::collection::vec(prop_oneof![
                "[a-z]{1,6}".prop_map(|s| (s.clone(), s)),
                "[a-z]{1,4}".prop_map(|n| (format!("{{{n}}}"), String::new())),
                "[a-z]{1,4}".prop_map(|n| (format!(":{n}"), String::new())),
            ], 1..6),
            values in proptest::collection::vec("[A-Za-z0-9%]{1,12}", 6),
        ) {
            let mut shape = shape;
            if shape[0].1.is_empty() {
                shape[0] = ("lead".into(), "lead".into());
            }
            let template: String = shape.iter().map(|(t, _)| format!("/{t}")).collect();
            let path: String = shape
                .iter()
                .zip(&values)
                .map(|((_, lit), v)| format!("/{}", if lit.is_empty() { v } else { lit }))
                .collect();
            let t = learned(&[template.as_str()]);
            prop_assert_eq!(t.resolve("items.shop", &path), Some(template.as_str()));
        }
    }
}
