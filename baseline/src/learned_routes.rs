//! Route templates learned per edge from how path segments vary, Drain-style: on one
//! edge and method, a path position that took at least `min_values` distinct values
//! under the same prefix becomes a parameter. A raw path that a client or an access log
//! recorded (`/users/alice`, `/users/bob`, …) then matches the template its callee's
//! router would have used, and a new value is not a new endpoint.
//!
//! What it does not do: the first segment never becomes a parameter (it names the API);
//! only HTTP paths (a leading `/`) are learned — gRPC methods and database tables are
//! closed sets where a new name matters; paths deeper than [`MAX_LEARNED_SEGMENTS`] are
//! not learned. The detector never lets a sensitive path match a learned parameter.
//!
//! Derived from the endpoint table, like the inbound counts: fed each endpoint once, when
//! it is first learned (so the cost is per distinct route, not per call), and rebuilt
//! after a restore or ageing. The result is a function of the set of learned routes, not
//! of their order: a position generalises once its distinct values under one prefix
//! reach the threshold, and generalising merges the subtrees below it.

use crate::config::DEFAULT_ROUTE_PARAM_MIN_VALUES;
use crate::index::{EdgeKey, Map, NameId, Set};

/// The segment a learned parameter takes in a template.
pub const PARAM_SEGMENT: &str = "{param}";
/// Deeper paths are not learned: bounds the tree's depth, whatever the routes.
pub const MAX_LEARNED_SEGMENTS: usize = 16;

/// One position of the path tree: either literal children or, once generalised, one
/// parameter child that every value goes through.
#[derive(Debug, Clone, Default)]
struct Node {
    literals: Map<Box<str>, Node>,
    param: Option<Box<Node>>,
    /// A learned route ends here.
    terminal: bool,
}

#[derive(Debug, Clone)]
pub struct LearnedRoutes {
    min_values: usize,
    by_edge: Map<(EdgeKey, NameId), Node>,
    /// Edges and methods with a parameter: only their calls need the tree.
    with_params: Set<(EdgeKey, NameId)>,
}

impl Default for LearnedRoutes {
    fn default() -> Self {
        Self::new(DEFAULT_ROUTE_PARAM_MIN_VALUES)
    }
}

impl LearnedRoutes {
    pub fn new(min_values: usize) -> Self {
        Self {
            min_values: min_values.max(2),
            by_edge: Map::default(),
            with_params: Set::default(),
        }
    }

    pub fn min_values(&self) -> usize {
        self.min_values
    }

    /// Whether any position of any edge became a parameter.
    pub fn has_params(&self) -> bool {
        !self.with_params.is_empty()
    }

    /// Whether a position of `method` on `edge` became a parameter.
    pub fn has_params_on(&self, edge: EdgeKey, method: NameId) -> bool {
        self.with_params.contains(&(edge, method))
    }

    /// Learns one route of `method` on `edge` (call once per distinct route).
    pub fn learn(&mut self, edge: EdgeKey, method: NameId, route: &str) {
        let Some(segments) = learnable(route) else {
            return;
        };
        let root = self.by_edge.entry((edge, method)).or_default();
        if insert(root, &segments, 0, self.min_values) {
            self.with_params.insert((edge, method));
        }
    }

    /// The learned template `route` matches on `edge`, when the match goes through at
    /// least one parameter (a route matched by literals alone is a learned route).
    pub fn resolve(&self, edge: EdgeKey, method: NameId, route: &str) -> Option<String> {
        if !self.has_params_on(edge, method) {
            return None;
        }
        let segments = learnable(route)?;
        let root = self.by_edge.get(&(edge, method))?;
        let mut out = Vec::with_capacity(segments.len());
        if !walk(root, &segments, &mut out) || !out.contains(&PARAM_SEGMENT) {
            return None;
        }
        Some(render(&out))
    }

    /// Whether `route` is a learned route or matches a learned template.
    #[cfg(test)]
    fn covers(&self, edge: EdgeKey, method: NameId, route: &str) -> bool {
        let (Some(segments), Some(root)) = (learnable(route), self.by_edge.get(&(edge, method)))
        else {
            return false;
        };
        walk(root, &segments, &mut Vec::new())
    }

    /// Learned templates with at least one parameter, per edge and method, sorted.
    pub fn templates(&self) -> Vec<(EdgeKey, NameId, String)> {
        let mut out = Vec::new();
        for ((edge, method), root) in &self.by_edge {
            let mut paths = Vec::new();
            collect(root, &mut Vec::new(), &mut paths);
            for path in paths.iter().filter(|p| p.contains(&PARAM_SEGMENT)) {
                out.push((*edge, *method, render(path)));
            }
        }
        out.sort();
        out
    }
}

fn learnable(route: &str) -> Option<Vec<&str>> {
    if !route.starts_with('/') {
        return None;
    }
    let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    (segments.len() <= MAX_LEARNED_SEGMENTS).then_some(segments)
}

fn render(segments: &[&str]) -> String {
    if segments.is_empty() {
        return "/".into();
    }
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(s);
    }
    out
}

/// Inserts `segments` below `node` (at `depth`); whether a parameter was created.
fn insert(node: &mut Node, segments: &[&str], depth: usize, min_values: usize) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        node.terminal = true;
        return false;
    };
    if let Some(param) = node.param.as_deref_mut() {
        return insert(param, rest, depth + 1, min_values);
    }
    let child = node.literals.entry((*first).into()).or_default();
    let mut created = insert(child, rest, depth + 1, min_values);
    // A learned template (`/users/{param}`, restored or re-learned) carries its parameter.
    let forced = *first == PARAM_SEGMENT;
    if depth > 0 && (forced || node.literals.len() >= min_values) {
        generalise(node, depth, min_values);
        created = true;
    }
    created
}

/// Merges `node`'s literal children into one parameter child: every path below them
/// continues below the parameter, where their values may now reach the threshold.
fn generalise(node: &mut Node, depth: usize, min_values: usize) {
    let mut suffixes: Vec<Vec<String>> = Vec::new();
    for (_, child) in node.literals.drain() {
        let mut paths = Vec::new();
        collect(&child, &mut Vec::new(), &mut paths);
        suffixes.extend(
            paths
                .into_iter()
                .map(|p| p.into_iter().map(str::to_string).collect()),
        );
    }
    let mut param = Node::default();
    for suffix in &suffixes {
        let suffix: Vec<&str> = suffix.iter().map(String::as_str).collect();
        insert(&mut param, &suffix, depth + 1, min_values);
    }
    node.param = Some(Box::new(param));
}

/// Matches `segments` below `node`, pushing the template's segments to `out`.
fn walk<'a>(node: &'a Node, segments: &[&'a str], out: &mut Vec<&'a str>) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return node.terminal;
    };
    if let Some(child) = node.literals.get(*first) {
        out.push(first);
        if walk(child, rest, out) {
            return true;
        }
        out.pop();
    }
    if let Some(param) = node.param.as_deref() {
        out.push(PARAM_SEGMENT);
        if walk(param, rest, out) {
            return true;
        }
        out.pop();
    }
    false
}

/// Every learned path below `node` (parameters as [`PARAM_SEGMENT`]).
fn collect<'a>(node: &'a Node, prefix: &mut Vec<&'a str>, out: &mut Vec<Vec<&'a str>>) {
    if node.terminal {
        out.push(prefix.clone());
    }
    for (segment, child) in &node.literals {
        prefix.push(segment);
        collect(child, prefix, out);
        prefix.pop();
    }
    if let Some(param) = node.param.as_deref() {
        prefix.push(PARAM_SEGMENT);
        collect(param, prefix, out);
        prefix.pop();
    }
}

#[cfg(test)]
#[path = "learned_routes_tests.rs"]
mod tests;
