//! The read side of the baseline that the hot path uses: plain hash maps, no SQL.

/// Hash maps of the index: a fast hasher, randomly seeded per process (the keys are
/// attacker-controlled names, so the seed must not be guessable).
pub type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
pub type Set<K> = hashbrown::HashSet<K, foldhash::fast::RandomState>;

/// A borrowed `(A, B)` key: hashes like the tuple, so composite keys are looked up
/// without cloning their strings.
#[derive(Hash)]
struct Pair<'a, A, B>(&'a A, &'a B);

impl<A: PartialEq, B: PartialEq> hashbrown::Equivalent<(A, B)> for Pair<'_, A, B> {
    fn equivalent(&self, key: &(A, B)) -> bool {
        *self.0 == key.0 && *self.1 == key.1
    }
}

use eastwest_model::Entry;

/// `source workload key → destination workload key` (see `Workload::key`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct EdgeKey {
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub edge: EdgeKey,
    pub method: String,
    pub route: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeStats {
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    /// Sampling-adjusted call count.
    pub calls: f64,
    pub errors: f64,
    /// Calls whose telemetry said mTLS / said plaintext (calls with unknown mTLS count in neither).
    pub mtls_calls: f64,
    pub plaintext_calls: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub calls: f64,
    pub errors: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextStats {
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub calls: f64,
}

/// Counts per closed event-time window, oldest first, bounded length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowHistory {
    /// One value per closed window in which the subject was active.
    pub values: Vec<f64>,
    /// Number of closed windows observed since the subject was first seen (including
    /// windows with zero activity), so that means account for idle windows.
    pub windows_observed: u64,
}

impl WindowHistory {
    pub fn mean(&self) -> f64 {
        if self.windows_observed == 0 {
            return 0.0;
        }
        self.values.iter().sum::<f64>() / self.windows_observed as f64
    }

    pub fn max(&self) -> f64 {
        self.values.iter().copied().fold(0.0, f64::max)
    }
}

/// Per calling workload: what it calls and how its fan-out behaves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStats {
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub calls: f64,
    /// Distinct destinations ever called.
    pub callees: Set<String>,
    /// Distinct destinations per window.
    pub fan_out: WindowHistory,
    /// Distinct endpoints (destination+method+route) per window.
    pub endpoint_fan_out: WindowHistory,
}

/// Per workload (as a caller): the identities it presents and how it connects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityStats {
    pub principals: Map<String, f64>,
    pub mtls_calls: f64,
    pub plaintext_calls: f64,
}

impl IdentityStats {
    /// Share of calls with known mTLS status that were mTLS; `None` when none are known.
    pub fn mtls_ratio(&self) -> Option<f64> {
        let known = self.mtls_calls + self.plaintext_calls;
        (known > 0.0).then(|| self.mtls_calls / known)
    }
}

/// Immutable snapshot of the baseline, built by the learner and swapped atomically
/// (`Arc<LookupIndex>`); every query is a hash lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LookupIndex {
    pub(crate) edges: Map<EdgeKey, EdgeStats>,
    pub(crate) endpoints: Map<EndpointKey, EndpointStats>,
    pub(crate) edge_contexts: Map<(Entry, EdgeKey), ContextStats>,
    pub(crate) endpoint_contexts: Map<(Entry, EndpointKey), ContextStats>,
    pub(crate) entries: Map<Entry, f64>,
    pub(crate) sources: Map<String, SourceStats>,
    pub(crate) edge_rates: Map<EdgeKey, WindowHistory>,
    pub(crate) identities: Map<String, IdentityStats>,
    /// Principal → workload keys it has spoken for.
    pub(crate) principal_workloads: Map<String, Set<String>>,
    /// Distinct endpoints (method + route) per edge.
    pub(crate) edge_endpoint_counts: Map<EdgeKey, u32>,
}

impl LookupIndex {
    pub fn edge(&self, key: &EdgeKey) -> Option<&EdgeStats> {
        self.edges.get(key)
    }
    pub fn endpoint(&self, key: &EndpointKey) -> Option<&EndpointStats> {
        self.endpoints.get(key)
    }
    pub fn edge_context(&self, entry: &Entry, edge: &EdgeKey) -> Option<&ContextStats> {
        self.edge_contexts.get(&Pair(entry, edge))
    }
    pub fn endpoint_context(&self, entry: &Entry, endpoint: &EndpointKey) -> Option<&ContextStats> {
        self.endpoint_contexts.get(&Pair(entry, endpoint))
    }
    /// Sampling-adjusted number of calls seen under this entry, if the entry is known.
    pub fn entry_calls(&self, entry: &Entry) -> Option<f64> {
        self.entries.get(entry).copied()
    }
    pub fn source(&self, workload_key: &str) -> Option<&SourceStats> {
        self.sources.get(workload_key)
    }
    pub fn edge_rate(&self, key: &EdgeKey) -> Option<&WindowHistory> {
        self.edge_rates.get(key)
    }
    pub fn identity(&self, workload_key: &str) -> Option<&IdentityStats> {
        self.identities.get(workload_key)
    }
    pub fn principal_workloads(&self, principal: &str) -> Option<&Set<String>> {
        self.principal_workloads.get(principal)
    }
    /// Distinct endpoints learned on this edge.
    pub fn endpoints_on_edge(&self, key: &EdgeKey) -> u32 {
        self.edge_endpoint_counts.get(key).copied().unwrap_or(0)
    }
    /// Distinct edges seen under this entry.
    pub fn edges(&self) -> impl Iterator<Item = (&EdgeKey, &EdgeStats)> {
        self.edges.iter()
    }
    pub fn endpoints(&self) -> impl Iterator<Item = (&EndpointKey, &EndpointStats)> {
        self.endpoints.iter()
    }
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }
    pub fn context_count(&self) -> usize {
        self.edge_contexts.len() + self.endpoint_contexts.len()
    }
}

impl LookupIndex {
    /// Drops edges, endpoints and contexts last seen before `cutoff_ns` (retention).
    pub(crate) fn age_out(&mut self, cutoff_ns: i64) {
        self.edges.retain(|_, s| s.last_seen_ns >= cutoff_ns);
        let edges = &self.edges;
        self.edge_rates.retain(|k, _| edges.contains_key(k));
        let counts = &mut self.edge_endpoint_counts;
        self.endpoints.retain(|k, s| {
            let keep = s.last_seen_ns >= cutoff_ns && edges.contains_key(&k.edge);
            if !keep && let Some(c) = counts.get_mut(&k.edge) {
                *c = c.saturating_sub(1);
            }
            keep
        });
        counts.retain(|k, c| *c > 0 && edges.contains_key(k));
        self.edge_contexts
            .retain(|(_, e), s| s.last_seen_ns >= cutoff_ns && edges.contains_key(e));
        let endpoints = &self.endpoints;
        self.endpoint_contexts
            .retain(|(_, e), s| s.last_seen_ns >= cutoff_ns && endpoints.contains_key(e));
    }
}
