//! What the API needs from the rest of the process (detector, baseline, collector
//! state); the binary implements it.

use eastwest_model::{Alert, BaselineStatus, Call, MetricsSnapshot};
use serde::{Deserialize, Serialize};

use crate::graph::{EdgeDetail, GraphSnapshot};

/// The `/api/v1/stats` body: the ingest counters (`spans`, `logs`, `calls`, `rejected`,
/// `dropped` and their detail) and the pipeline's event time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    #[serde(flatten)]
    pub ingest: MetricsSnapshot,
    /// Calls that reached the pipeline after event time had passed them.
    pub late_calls: u64,
    /// Calls waiting for the watermark before they are judged.
    pub buffered_calls: u64,
    /// The event time judged up to (RFC 3339), once there is one.
    pub watermark: Option<String>,
}

/// The `/api/v1/calls/recent` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentCalls {
    /// Oldest first.
    pub calls: Vec<Call>,
}

/// Read access to live pipeline state plus the two operator actions that change it.
/// Methods are called from blocking threads (never on the async runtime), so they may
/// take locks.
pub trait Backend: Send + Sync + 'static {
    fn stats(&self) -> Stats;
    /// Adds the collector, history and pipeline series to the registry `/metrics`
    /// encodes (per scrape: register collectors that read live state when encoded).
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry);
    /// Nodes and edges with status `baseline` | `new`; the API overlays `alerted`.
    /// Edge `calls`/`errors` must be cumulative: they are exported as counters.
    fn graph(&self) -> GraphSnapshot;
    fn edge_detail(&self, source: &str, destination: &str) -> Option<EdgeDetail>;
    /// The `/api/v1/baseline` body.
    fn baseline_status(&self) -> BaselineStatus;
    /// Ends learning now; returns the new `/api/v1/baseline` body.
    fn end_learning(&self) -> BaselineStatus;
    /// The operator says this alert's call is expected: learn it.
    fn accept(&self, alert: &Alert);
    /// The most recent `limit` calls the collector produced, oldest first (debugging
    /// and end-to-end tests).
    fn recent_calls(&self, limit: usize) -> Vec<Call> {
        let _ = limit;
        Vec::new()
    }
    /// Whether the pipeline is up (receivers bound, baseline loaded).
    fn ready(&self) -> bool;
}
