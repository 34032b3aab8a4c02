//! What `GET /api/v1/baseline` shows: the learner fills it, the API serves it and the
//! dashboard reads it, so the shape lives here where all three can name it.

use serde::{Deserialize, Serialize};

/// Whether the baseline is still being learned or alerts are being raised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LearningPhase {
    /// Learning (also before the first call: learning starts at the first accepted call).
    #[default]
    Learning,
    Detecting,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineCounts {
    pub edges: usize,
    pub endpoints: usize,
    pub contexts: usize,
    pub workloads: usize,
}

/// A new version of a known workload, reported once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutChange {
    pub workload: String,
    pub version: String,
    pub first_seen: String,
    pub first_seen_ns: i64,
    pub summary: String,
    /// Edges / endpoints first learned from calls of this version.
    pub new_edges: u64,
    pub new_endpoints: u64,
    /// The first of them (`destination METHOD route`), bounded.
    pub introduced: Vec<String>,
    /// The detector saw the new version replace the old ones (their traffic fell while
    /// its rose); until then the version is only a string the telemetry carried, and
    /// nothing it newly calls is folded into a notice.
    pub confirmed: bool,
    /// Why it counts as confirmed (the traffic figures), empty until then.
    pub confirmation: String,
}

/// The learning state, the learned table sizes and the rollouts seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineStatus {
    pub state: LearningPhase,
    /// Event time of the first learned call; kept after learning ends.
    pub learning_started: Option<String>,
    /// When learning ends (while learning) or ended (while detecting).
    pub learning_ends: Option<String>,
    pub learned_seconds: f64,
    pub learning_period_seconds: f64,
    pub watermark: Option<String>,
    pub counts: BaselineCounts,
    pub rollout_changes: Vec<RolloutChange>,
}
