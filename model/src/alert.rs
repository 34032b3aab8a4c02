use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    NewEdge,
    NewEndpoint,
    SensitiveEndpoint,
    FanOut,
    RateSpike,
    ContextAnomaly,
    Probing,
    Plaintext,
    IdentityMismatch,
    /// A workload never seen before (with an identity of its own never seen either): one
    /// notice per workload, listing what it calls as it grows.
    NewWorkload,
    /// A known endpoint answering (or sent) far more bytes per call than it ever did:
    /// exfiltration through a normal path.
    VolumeSpike,
    /// Findings over the alert budget, counted in one alert per budget pool and window
    /// (so a storm still reaches the store and the webhooks).
    AlertStorm,
}

impl AlertKind {
    pub const ALL: [AlertKind; 12] = [
        AlertKind::NewEdge,
        AlertKind::NewEndpoint,
        AlertKind::SensitiveEndpoint,
        AlertKind::FanOut,
        AlertKind::RateSpike,
        AlertKind::ContextAnomaly,
        AlertKind::Probing,
        AlertKind::Plaintext,
        AlertKind::IdentityMismatch,
        AlertKind::NewWorkload,
        AlertKind::VolumeSpike,
        AlertKind::AlertStorm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NewEdge => "new_edge",
            AlertKind::NewEndpoint => "new_endpoint",
            AlertKind::SensitiveEndpoint => "sensitive_endpoint",
            AlertKind::FanOut => "fan_out",
            AlertKind::RateSpike => "rate_spike",
            AlertKind::ContextAnomaly => "context_anomaly",
            AlertKind::Probing => "probing",
            AlertKind::Plaintext => "plaintext",
            AlertKind::IdentityMismatch => "identity_mismatch",
            AlertKind::NewWorkload => "new_workload",
            AlertKind::VolumeSpike => "volume_spike",
            AlertKind::AlertStorm => "alert_storm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Operator-facing lifecycle of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    #[default]
    Open,
    Acked,
    Accepted,
}

/// Entry as shown in an alert (`{"service": "frontend", "route": "GET /cart"}`).
pub type EntryRef = crate::Entry;

/// The alert schema of the external contract. Fields may be added, never renamed.
/// `remote = "Self"`: serde's derive goes to inherent functions, and `attack.rs`
/// implements the traits with them, adding the derived ATT&CK techniques (`attack`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Alert {
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    /// Calibrated surprise, −log p (natural log) of what was observed under the baseline.
    pub score: f64,
    pub source: Workload,
    pub destination: Option<Workload>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub entry: Option<EntryRef>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: u64,
    pub trace_ids: Vec<String>,
    pub incident_id: Option<String>,
    pub summary: String,
    /// The numbers behind the score, by name (e.g. `baseline_callees`, `p_new_callee`).
    #[serde(default)]
    pub evidence: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub state: AlertState,
}
