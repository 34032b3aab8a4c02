use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Severity, Workload};

/// Findings from one source close in event time, grouped; escalated when new edges
/// chain into a lateral-movement path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub source: Workload,
    pub severity: Severity,
    pub score: f64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub alert_ids: Vec<String>,
    /// Workload keys along a chain of new edges (A → B → C), empty when no path formed.
    pub path: Vec<String>,
    /// Findings folded into this incident beyond the alert budget (storm summary).
    #[serde(default)]
    pub suppressed: u64,
    pub summary: String,
}

/// Ground truth for one injected behaviour in a labelled dataset (`labels.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub scenario: String,
    /// Expected alert kind (`sensitive_endpoint`, …); `None` for benign-change labels
    /// that must stay silent.
    pub kind: Option<crate::AlertKind>,
    /// Workload key (`service.namespace`) of the acting source.
    pub source: String,
    pub destination: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `attack` or `benign`.
    pub class: String,
}
