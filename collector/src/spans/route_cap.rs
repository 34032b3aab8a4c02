//! The per-edge route cap: a flood of unique paths on one edge, or of edges, cannot
//! grow memory; what is over the cap is reported as [`OVERFLOW_ROUTE`].

use std::collections::HashSet;
use std::hash::BuildHasher;

use eastwest_model::CompactString;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// Route used once an edge has more distinct routes than the cap allows.
pub const OVERFLOW_ROUTE: &str = "{overflow}";

/// Edge names and routes come from telemetry: the hash is seeded so they cannot be
/// chosen to collide (and every call looks its route up, so it is not SipHash).
type EdgeHasher = foldhash::quality::RandomState;

#[derive(Debug)]
struct EdgeRoutes {
    source: String,
    destination: String,
    routes: HashSet<CompactString, EdgeHasher>,
}

impl EdgeRoutes {
    fn is(&self, source: &str, destination: &str) -> bool {
        self.source == source && self.destination == destination
    }
}

/// Caps distinct routes per edge and the number of edges it tracks. Every call passes
/// through it, so a known edge is found from the borrowed names, without allocating.
#[derive(Debug, Default)]
pub struct RouteCap {
    edges: HashTable<EdgeRoutes>,
    hasher: EdgeHasher,
    max_routes_per_edge: usize,
    max_edges: usize,
    pub overflowed: u64,
}

impl RouteCap {
    pub fn new(max_routes_per_edge: usize, max_edges: usize) -> Self {
        Self {
            max_routes_per_edge,
            max_edges,
            ..Self::default()
        }
    }

    /// The route to report for this edge: itself while under the cap, else overflow.
    pub fn admit(
        &mut self,
        source: &str,
        destination: &str,
        route: CompactString,
    ) -> CompactString {
        let hasher = &self.hasher;
        let hash = hasher.hash_one((source, destination));
        let full = self.edges.len() >= self.max_edges;
        let edge = match self.edges.entry(
            hash,
            |e| e.is(source, destination),
            |e| hasher.hash_one((e.source.as_str(), e.destination.as_str())),
        ) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(_) if full => {
                self.overflowed += 1;
                return OVERFLOW_ROUTE.into();
            }
            Entry::Vacant(new) => new
                .insert(EdgeRoutes {
                    source: source.to_string(),
                    destination: destination.to_string(),
                    routes: HashSet::default(),
                })
                .into_mut(),
        };
        if edge.routes.contains(&route) {
            return route;
        }
        if edge.routes.len() >= self.max_routes_per_edge {
            self.overflowed += 1;
            return OVERFLOW_ROUTE.into();
        }
        edge.routes.insert(route.clone());
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn edges_past_the_cap_overflow_and_known_ones_keep_their_routes() {
        let mut cap = RouteCap::new(5, 2);
        assert_eq!(cap.admit("a", "b", "/1".into()), "/1");
        assert_eq!(cap.admit("b", "a", "/1".into()), "/1");
        assert_eq!(cap.admit("a", "c", "/1".into()), OVERFLOW_ROUTE);
        // Names are compared whole: ("ab", "") is not ("a", "b").
        assert_eq!(cap.admit("ab", "", "/1".into()), OVERFLOW_ROUTE);
        assert_eq!(cap.admit("a", "b", "/2".into()), "/2");
        assert_eq!(cap.overflowed, 2);
    }
}
