//! The dialect-neutral rule set: per destination workload, every (source, protocol,
//! method, route, port) it was observed to serve, with counts and first/last seen.

use std::collections::BTreeSet;

use eastwest_model::Protocol;
use serde::{Deserialize, Serialize};

/// A workload as a policy names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Peer {
    /// `service.namespace` (or `service`): eastwest's workload key.
    pub key: String,
    pub service: String,
    pub namespace: Option<String>,
    /// SPIFFE ids the workload presented (empty when none was seen).
    #[serde(default)]
    pub principals: BTreeSet<String>,
}

/// One allowed operation, as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub source: Peer,
    pub protocol: Protocol,
    pub method: String,
    pub route: String,
    /// Destination port, when the telemetry carried it.
    pub port: Option<u16>,
    pub calls: f64,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
}

/// What one destination workload needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRules {
    pub destination: Peer,
    pub rules: Vec<Rule>,
}

/// Where a rule set came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RuleSource {
    /// The newest baseline snapshot (its directory name).
    Baseline { snapshot: String },
    /// The call history between two event times (RFC 3339, open ends `None`).
    History {
        since: Option<String>,
        until: Option<String>,
    },
}

/// An observed operation left out of the rule set, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    pub source: String,
    pub destination: String,
    pub method: String,
    pub route: String,
    pub alert_id: String,
}

/// Least-privilege allow rules for every destination seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    pub from: RuleSource,
    pub workloads: Vec<WorkloadRules>,
    /// Operations that raised alerts nobody accepted: never allowed.
    pub excluded: Vec<Excluded>,
}

impl RuleSet {
    pub fn rule_count(&self) -> usize {
        self.workloads.iter().map(|w| w.rules.len()).sum()
    }

    /// Keeps only destinations in `namespace`.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.workloads
            .retain(|w| w.destination.namespace.as_deref() == Some(namespace));
        self
    }
}
