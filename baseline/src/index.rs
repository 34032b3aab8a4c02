//! The read side of the baseline that the hot path uses: plain hash maps, no SQL.

/// Hash maps of the index: a fast hasher, randomly seeded per process (the keys are
/// attacker-controlled names, so the seed must not be guessable).
pub type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
pub type Set<K> = hashbrown::HashSet<K, foldhash::fast::RandomState>;

use eastwest_model::{Call, Entry, Workload};

use crate::endpoints::EndpointTable;
use crate::learned_routes::LearnedRoutes;
pub use crate::names::{NameId, Names};

/// `source workload key → destination workload key` (see `Workload::key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub source: NameId,
    pub destination: NameId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub edge: EdgeKey,
    pub method: NameId,
    pub route: NameId,
}

/// The request's entry (root service + route), interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    pub service: NameId,
    pub route: NameId,
}

/// The keys of one call in one index; `None` where a name was never learned (so no row
/// under it exists either), and for the endpoint also where the endpoint is not learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallKeys {
    pub source: Option<NameId>,
    pub edge: Option<EdgeKey>,
    pub endpoint: Option<EndpointKey>,
    pub entry: Option<EntryKey>,
    /// Where the endpoint's row is, so reading it needs no second hash probe.
    endpoint_row: Option<u32>,
}

/// What the detectors read for every call, found from its [`CallKeys`]. The edge's
/// context under the call's entry is not here: a call whose endpoint is known under its
/// entry has it too (the learner records both together, and the edge's outlives the
/// endpoint's), so only a call without `endpoint_context` asks
/// [`LookupIndex::edge_context`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CallStats<'a> {
    pub edge: Option<&'a EdgeStats>,
    pub endpoint: Option<&'a EndpointStats>,
    pub endpoint_context: Option<&'a ContextStats>,
    /// Sampling-adjusted calls seen under the call's entry.
    pub entry_calls: Option<f64>,
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
    pub callees: Set<NameId>,
    /// Distinct destinations per window.
    pub fan_out: WindowHistory,
    /// Distinct endpoints (destination+method+route) per window.
    pub endpoint_fan_out: WindowHistory,
}

/// Per workload (as a caller): the identities it presents and how it connects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityStats {
    pub principals: Map<NameId, f64>,
    pub mtls_calls: f64,
    pub plaintext_calls: f64,
}

/// A workload's inbound calls and how they connected, summed over its edges (derived
/// from the edges, so it ages with them and is never persisted on its own).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InboundTls {
    /// Every inbound call, whatever its mTLS status (a workload that only ever received
    /// calls still existed through learning).
    pub calls: f64,
    pub mtls_calls: f64,
    pub plaintext_calls: f64,
}

/// Counts a call of `weight` as mTLS or plaintext (edges, identities and inbound counts
/// alike); a call whose mTLS status is unknown counts in neither.
pub(crate) fn count_tls(
    mtls: Option<bool>,
    weight: f64,
    mtls_calls: &mut f64,
    plaintext_calls: &mut f64,
) {
    match mtls {
        Some(true) => *mtls_calls += weight,
        Some(false) => *plaintext_calls += weight,
        None => {}
    }
}

impl IdentityStats {
    /// Share of calls with known mTLS status that were mTLS; `None` when none are known.
    pub fn mtls_ratio(&self) -> Option<f64> {
        let known = self.mtls_calls + self.plaintext_calls;
        (known > 0.0).then(|| self.mtls_calls / known)
    }
}

/// The learned baseline as the hot path reads it: every query is a hash lookup on
/// interned ids. The learner updates it in place; `baseline rebuild` and a restore swap
/// in a whole new one.
#[derive(Debug, Clone, Default)]
pub struct LookupIndex {
    pub(crate) names: Names,
    pub(crate) edges: Map<EdgeKey, EdgeStats>,
    /// Endpoints with their entry → endpoint contexts.
    pub(crate) endpoints: EndpointTable,
    pub(crate) edge_contexts: Map<(EntryKey, EdgeKey), ContextStats>,
    pub(crate) entries: Map<EntryKey, f64>,
    pub(crate) sources: Map<NameId, SourceStats>,
    pub(crate) edge_rates: Map<EdgeKey, WindowHistory>,
    pub(crate) identities: Map<NameId, IdentityStats>,
    /// Principal → workload keys it has spoken for.
    pub(crate) principal_workloads: Map<NameId, Set<NameId>>,
    /// Distinct endpoints (method + route) per edge.
    pub(crate) edge_endpoint_counts: Map<EdgeKey, u32>,
    /// Per destination, from `edges` (see [`LookupIndex::derive_inbound_tls`]).
    pub(crate) inbound_tls: Map<NameId, InboundTls>,
    /// Route templates learned per edge from the endpoints' routes (derived, see
    /// [`LookupIndex::derive_learned_routes`]).
    pub(crate) learned_routes: LearnedRoutes,
}

/// Equal when the learned tables are equal: ids depend on the order names were first
/// seen, so two indexes are compared by name, through their sorted tables.
impl PartialEq for LookupIndex {
    fn eq(&self, other: &Self) -> bool {
        crate::tables::to_tables(self) == crate::tables::to_tables(other)
    }
}

impl LookupIndex {
    pub fn names(&self) -> &Names {
        &self.names
    }
    /// The name behind an id issued by this index.
    pub fn name(&self, id: NameId) -> &str {
        self.names.name(id)
    }
    pub fn id(&self, name: &str) -> Option<NameId> {
        self.names.get(name)
    }
    pub fn edge_key(&self, source: &str, destination: &str) -> Option<EdgeKey> {
        Some(EdgeKey {
            source: self.id(source)?,
            destination: self.id(destination)?,
        })
    }
    pub fn entry_key(&self, entry: &Entry) -> Option<EntryKey> {
        Some(EntryKey {
            service: self.id(&entry.service)?,
            route: self.id(&entry.route)?,
        })
    }
    /// Resolves a call's names once; the table lookups that follow are integer-keyed.
    pub fn call_keys(&self, call: &Call) -> CallKeys {
        let source = self.names.workload(&call.source);
        let edge =
            source
                .zip(self.names.workload(&call.destination))
                .map(|(source, destination)| EdgeKey {
                    source,
                    destination,
                });
        // Found from the route's text: resolving the route to its id first would read its
        // interned name, one more cache miss per call.
        let endpoint_row = edge.and_then(|edge| {
            let method = self.id(&call.method)?;
            self.endpoints.find(&self.names, edge, method, &call.route)
        });
        let endpoint = endpoint_row.and_then(|at| self.endpoints.row_key(at));
        let entry = call.entry.as_ref().and_then(|e| self.entry_key(e));
        CallKeys {
            source,
            edge,
            endpoint,
            entry,
            endpoint_row,
        }
    }
    /// The learned stats of a call whose keys this index resolved.
    pub fn call_stats(&self, keys: &CallKeys) -> CallStats<'_> {
        let endpoint_row = self.call_endpoint_row(keys);
        CallStats {
            edge: keys.edge.and_then(|k| self.edge(k)),
            endpoint: endpoint_row.map(|row| &row.stats),
            endpoint_context: endpoint_row
                .zip(keys.entry)
                .and_then(|(row, e)| row.context(e)),
            entry_calls: keys.entry.and_then(|e| self.entry_calls(e)),
        }
    }
    pub fn edge(&self, key: EdgeKey) -> Option<&EdgeStats> {
        self.edges.get(&key)
    }
    pub fn endpoint(&self, key: EndpointKey) -> Option<&EndpointStats> {
        self.endpoints.get(key).map(|row| &row.stats)
    }
    pub fn edge_context(&self, entry: EntryKey, edge: EdgeKey) -> Option<&ContextStats> {
        self.edge_contexts.get(&(entry, edge))
    }
    /// The learned endpoint of a call whose keys this index resolved (read from the row
    /// the keys point at, without a second hash probe).
    pub fn call_endpoint(&self, keys: &CallKeys) -> Option<&EndpointStats> {
        self.call_endpoint_row(keys).map(|row| &row.stats)
    }
    /// The call's endpoint under the call's entry, for keys this index resolved.
    pub fn call_endpoint_context(&self, keys: &CallKeys) -> Option<&ContextStats> {
        self.call_endpoint_row(keys)?.context(keys.entry?)
    }
    fn call_endpoint_row(&self, keys: &CallKeys) -> Option<&crate::endpoints::EndpointRow> {
        self.endpoints.at(keys.endpoint_row?, keys.endpoint?)
    }
    pub fn endpoint_context(
        &self,
        entry: EntryKey,
        endpoint: EndpointKey,
    ) -> Option<&ContextStats> {
        self.endpoints.get(endpoint)?.context(entry)
    }
    /// Sampling-adjusted number of calls seen under this entry, if the entry is known.
    pub fn entry_calls(&self, entry: EntryKey) -> Option<f64> {
        self.entries.get(&entry).copied()
    }
    /// Whether any request entered the mesh at `service` (a scan of the entries: call it
    /// only off the hot path).
    pub fn is_entry_service(&self, service: NameId) -> bool {
        self.entries.keys().any(|e| e.service == service)
    }
    pub fn source(&self, workload: NameId) -> Option<&SourceStats> {
        self.sources.get(&workload)
    }
    /// Whether `source` ever called `destination` (workload keys).
    pub fn has_callee(&self, source: &str, destination: &str) -> bool {
        self.edge_key(source, destination)
            .and_then(|k| {
                self.source(k.source)
                    .map(|s| s.callees.contains(&k.destination))
            })
            .unwrap_or(false)
    }
    pub fn edge_rate(&self, key: EdgeKey) -> Option<&WindowHistory> {
        self.edge_rates.get(&key)
    }
    pub fn identity(&self, workload: NameId) -> Option<&IdentityStats> {
        self.identities.get(&workload)
    }
    /// How many calls this workload received over its known edges, and how they
    /// connected (mTLS or plaintext).
    pub fn inbound_tls(&self, workload: NameId) -> Option<&InboundTls> {
        self.inbound_tls.get(&workload)
    }
    /// Calls this workload received in the baseline (0 when it never was called).
    pub fn received_calls(&self, workload: NameId) -> f64 {
        self.inbound_tls(workload).map_or(0.0, |i| i.calls)
    }
    /// Whether the baseline knows a workload: it called, or was called.
    pub fn knows_workload(&self, workload: &Workload) -> bool {
        self.names()
            .workload(workload)
            .is_some_and(|id| self.source(id).is_some() || self.received_calls(id) > 0.0)
    }
    /// Workload keys a principal has spoken for.
    pub fn principal_workloads(&self, principal: &str) -> Option<&Set<NameId>> {
        self.principal_workloads.get(&self.id(principal)?)
    }
    /// Distinct endpoints learned on this edge.
    pub fn endpoints_on_edge(&self, key: EdgeKey) -> u32 {
        self.edge_endpoint_counts.get(&key).copied().unwrap_or(0)
    }
    pub fn edges(&self) -> impl Iterator<Item = (&EdgeKey, &EdgeStats)> {
        self.edges.iter()
    }
    pub fn endpoints(&self) -> impl Iterator<Item = (&EndpointKey, &EndpointStats)> {
        self.endpoints.iter().map(|row| (&row.key, &row.stats))
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
        self.edge_contexts.len() + self.endpoints.context_count()
    }
}

impl LookupIndex {
    /// Drops edges, endpoints and contexts last seen before `cutoff_ns` (retention), and
    /// with them what only they kept alive: callers, callees, entries, identities and
    /// principals. Without the second part, names churning through the capped tables
    /// would grow the uncapped ones forever.
    pub(crate) fn age_out(&mut self, cutoff_ns: i64) {
        let endpoints_before = self.endpoints.len();
        self.edges.retain(|_, s| s.last_seen_ns >= cutoff_ns);
        let edges = &self.edges;
        self.edge_rates.retain(|k, _| edges.contains_key(k));
        let counts = &mut self.edge_endpoint_counts;
        self.endpoints.retain(
            |row| {
                let edge = row.key.edge;
                let keep = row.stats.last_seen_ns >= cutoff_ns && edges.contains_key(&edge);
                if !keep && let Some(c) = counts.get_mut(&edge) {
                    *c = c.saturating_sub(1);
                }
                keep
            },
            |context| context.last_seen_ns >= cutoff_ns,
        );
        counts.retain(|k, c| *c > 0 && edges.contains_key(k));
        self.edge_contexts
            .retain(|(_, e), s| s.last_seen_ns >= cutoff_ns && edges.contains_key(e));
        // An endpoint's context implies its edge's, so these are all entries in use.
        let live_entries: Set<EntryKey> = self.edge_contexts.keys().map(|(e, _)| *e).collect();
        self.entries.retain(|e, _| live_entries.contains(e));
        // A caller's last call touched one of its edges, so a caller seen since the cutoff
        // still has one.
        self.sources.retain(|source, s| {
            s.callees.retain(|&destination| {
                let edge = EdgeKey {
                    source: *source,
                    destination,
                };
                edges.contains_key(&edge)
            });
            s.last_seen_ns >= cutoff_ns && !s.callees.is_empty()
        });
        let sources = &self.sources;
        self.identities.retain(|w, _| sources.contains_key(w));
        self.derive_principal_workloads();
        self.derive_inbound_tls();
        if self.endpoints.len() != endpoints_before {
            self.derive_learned_routes(self.learned_routes.min_values());
        }
    }

    /// Principal → workloads that presented it, from the identities (after loading
    /// tables or ageing; the learner fills both together call by call in between).
    pub(crate) fn derive_principal_workloads(&mut self) {
        self.principal_workloads.clear();
        for (workload, identity) in &self.identities {
            for principal in identity.principals.keys() {
                (self.principal_workloads.entry(*principal).or_default()).insert(*workload);
            }
        }
    }

    /// Recomputes the per-destination inbound counts from the edges (after loading
    /// tables or ageing; the learner keeps them current call by call in between).
    pub(crate) fn derive_inbound_tls(&mut self) {
        self.inbound_tls.clear();
        for (key, edge) in &self.edges {
            let inbound = self.inbound_tls.entry(key.destination).or_default();
            inbound.calls += edge.calls;
            inbound.mtls_calls += edge.mtls_calls;
            inbound.plaintext_calls += edge.plaintext_calls;
        }
    }
}

impl LookupIndex {
    /// Re-learns the route templates from the endpoint table, with `min_values` distinct
    /// values making a parameter (after loading tables, ageing, or a config change).
    pub(crate) fn derive_learned_routes(&mut self, min_values: usize) {
        let mut learned = LearnedRoutes::new(min_values);
        for row in self.endpoints.iter() {
            let key = row.key;
            learned.learn(key.edge, key.method, self.names.name(key.route));
        }
        self.learned_routes = learned;
    }

    /// Learns route parameters at `min_values` distinct values from now on; re-learns the
    /// tables' routes only if that differs from the threshold they were learned with.
    pub(crate) fn set_route_param_min_values(&mut self, min_values: usize) {
        if min_values.max(2) != self.learned_routes.min_values() {
            self.derive_learned_routes(min_values);
        }
    }

    /// The learned template a call's HTTP path matches on its edge, when the path is not
    /// itself a learned endpoint but a learned parameter covers it (`/items/berlin` on an
    /// edge that learned `/items/{param}` from ten cities). Costs nothing until some
    /// edge has a parameter, then the edge's names per HTTP call; the endpoint table and
    /// the tree are read only for calls on an edge and method with a parameter.
    pub fn learned_template(&self, call: &Call) -> Option<String> {
        if !self.learned_routes.has_params() || !call.route.starts_with('/') {
            return None;
        }
        let edge = EdgeKey {
            source: self.names.workload(&call.source)?,
            destination: self.names.workload(&call.destination)?,
        };
        let method = self.id(&call.method)?;
        if !self.learned_routes.has_params_on(edge, method)
            || (self.endpoints)
                .find(&self.names, edge, method, &call.route)
                .is_some()
        {
            return None;
        }
        self.learned_routes.resolve(edge, method, &call.route)
    }

    /// Learned templates with a parameter: (source, destination, method, template).
    pub fn learned_templates(&self) -> Vec<(String, String, String, String)> {
        let n = |id: NameId| self.name(id).to_string();
        (self.learned_routes.templates().into_iter())
            .map(|(edge, method, t)| (n(edge.source), n(edge.destination), n(method), t))
            .collect()
    }
}

/// Interner size below which compaction is never attempted.
const MIN_NAMES_TO_COMPACT: usize = 4096;

impl LookupIndex {
    /// Upper bound on the names the tables still refer to.
    fn live_names_bound(&self) -> usize {
        2 * (self.edges.len() + self.endpoints.len() + self.entries.len())
            + self.principal_workloads.len()
            + self
                .sources
                .values()
                .map(|s| 1 + s.callees.len())
                .sum::<usize>()
            + self.identities.len()
    }

    /// Re-interns only the names still in use once most of the interner is names of rows
    /// that aged out (churning names would otherwise grow it forever). Ids change, so the
    /// caller must hold no ids outside the tables.
    pub(crate) fn compact_names(&mut self) {
        if self.names.len() < MIN_NAMES_TO_COMPACT
            || self.names.len() <= 2 * self.live_names_bound()
        {
            return;
        }
        let tables = crate::tables::to_tables(self);
        let here = std::path::Path::new("(in memory)");
        let tables: Vec<_> = tables.iter().map(|(n, b)| (*n, b.clone(), here)).collect();
        let min_values = self.learned_routes.min_values();
        *self = crate::tables::from_tables(&tables)
            .expect("tables written from an index read back into one");
        self.set_route_param_min_values(min_values);
    }
}
