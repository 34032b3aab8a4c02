//! Spans → calls: pairing client and server sides, collapsing proxy layers, naming
//! virtual peers (resolved to the workloads their own spans name), attaching the
//! request's entry, normalising paths and matching them to the callee's known route
//! templates, and taking the source identity the callee observed over the caller's claim.

mod attributes;
mod batch;
#[cfg(test)]
mod bytes_tests;
mod info;
mod keys;
mod markers;
mod naming;
#[cfg(test)]
mod naming_tests;
mod normalizer;
mod paths;
mod peers;
mod route_cap;
mod routes;
mod sampling;
mod shared_names;
mod templates;
#[cfg(test)]
mod tests;
mod text;
mod workload;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::CollectorError;

pub(crate) use attributes::Key;
pub(crate) use attributes::ascii_upper;
pub use attributes::truncate as truncate_field;
pub(crate) use attributes::{Attrs, KeyIndex, Val};
pub use batch::SpanBatch;
pub(crate) use info::SpanHead;
pub use normalizer::{NormalizerStats, SpanNormalizer};
pub use route_cap::OVERFLOW_ROUTE;
pub use routes::template_path;
pub use sampling::weight_from_tracestate;
pub use workload::{parse_upstream_cluster, spiffe_service_account, split_k8s_host};

/// The workload a resource describes (reporting proxy of an access log, emitter of a span).
pub fn resource_workload(
    resource: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> eastwest_model::Workload {
    workload::own_workload(&attributes::Attrs::new(&[], resource)).0
}

/// Seeded per process: span ids, names and routes are attacker-chosen, so no fixed hash
/// function.
type Hasher = foldhash::fast::RandomState;

/// As the OTel servicegraph connector's store TTL. Every pending side holds back the
/// release point (calls reach the engine in event-time order), so this bounds how long
/// an alert can wait for a peer that never comes.
pub const DEFAULT_PAIRING_TTL: Duration = Duration::from_secs(2);
/// A call's wait for its trace's root server span; it holds back the release point too.
pub const DEFAULT_ENTRY_WAIT: Duration = Duration::from_secs(2);
pub const DEFAULT_MAX_PENDING_SPANS: usize = 200_000;
pub const DEFAULT_MAX_TRACES: usize = 100_000;
pub const DEFAULT_MAX_ROUTES_PER_EDGE: usize = 200;
pub const DEFAULT_MAX_EDGES: usize = 50_000;
/// Longest a span is taken to last when pairing (its peer is awaited until its end plus
/// the TTL): bounds how long a forged duration can keep a side pending.
pub const DEFAULT_MAX_CALL_DURATION: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizerConfig {
    /// Event time an unpaired client or server side waits for its peer before it
    /// becomes a call to/from a virtual peer.
    #[serde(with = "humantime_serde")]
    pub pairing_ttl: Duration,
    /// Event time a finished call waits for its trace's root server span (the entry).
    #[serde(with = "humantime_serde")]
    pub entry_wait: Duration,
    /// Unpaired spans held at once; beyond it the oldest is evicted and counted.
    pub max_pending_spans: usize,
    /// Traces whose entry is tracked at once.
    pub max_traces: usize,
    /// Distinct routes per edge before further routes report as `{overflow}`.
    pub max_routes_per_edge: usize,
    /// Edges tracked by the route cap.
    pub max_edges: usize,
    /// Longest a span is taken to last when waiting for its peer.
    #[serde(with = "humantime_serde")]
    pub max_call_duration: Duration,
    /// When a trace's root server span has not come within `entry_wait`, give its calls
    /// the earliest server span seen as their entry (for meshes whose edge proxy is not
    /// traced). Off by default: a late root (a slow request) would then lend its calls an
    /// entry that learning never saw for them, and `context_anomaly` would fire on a
    /// fault; without a root the calls carry no entry and are not judged by context.
    pub guess_entry: bool,
}

impl Default for NormalizerConfig {
    fn default() -> Self {
        Self {
            pairing_ttl: DEFAULT_PAIRING_TTL,
            entry_wait: DEFAULT_ENTRY_WAIT,
            max_pending_spans: DEFAULT_MAX_PENDING_SPANS,
            max_traces: DEFAULT_MAX_TRACES,
            max_routes_per_edge: DEFAULT_MAX_ROUTES_PER_EDGE,
            max_edges: DEFAULT_MAX_EDGES,
            max_call_duration: DEFAULT_MAX_CALL_DURATION,
            guess_entry: false,
        }
    }
}

impl NormalizerConfig {
    pub fn validate(&self) -> Result<(), CollectorError> {
        let bad = |m: &str| Err(CollectorError::InvalidConfig(m.to_string()));
        if self.max_pending_spans == 0 || self.max_traces == 0 {
            return bad("max_pending_spans and max_traces must be at least 1");
        }
        if self.max_routes_per_edge == 0 || self.max_edges == 0 {
            return bad("max_routes_per_edge and max_edges must be at least 1");
        }
        if self.pairing_ttl.is_zero() {
            return bad("pairing_ttl must be greater than zero");
        }
        Ok(())
    }
}
