//! Detector parameters, each with a documented default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::DetectorError;

/// Surprise (−ln p) below which a finding is not raised: p ≥ e^−4 ≈ 1.8%.
pub const DEFAULT_MIN_SCORE: f64 = 4.0;
/// Findings from one source within this event time join one incident.
pub const DEFAULT_INCIDENT_WINDOW: Duration = Duration::from_secs(600);
/// Example trace ids kept per alert.
pub const DEFAULT_MAX_TRACE_IDS: usize = 5;
/// Calls an entry must have been seen with before a context anomaly under it counts.
pub const DEFAULT_MIN_ENTRY_CALLS: f64 = 20.0;
/// Calls on an edge/workload before its mTLS habit is trusted.
pub const DEFAULT_MIN_MTLS_CALLS: f64 = 20.0;
/// Distinct alerts kept in memory (oldest forgotten first; the store keeps them all).
pub const DEFAULT_MAX_TRACKED_ALERTS: usize = 100_000;

/// A route or address pattern that makes a call sensitive, with the surprise it adds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SensitivePattern {
    pub name: String,
    /// Regular expression matched against the route and against `host:port`.
    pub pattern: String,
    pub weight: f64,
}

fn pattern(name: &str, pattern: &str, weight: f64) -> SensitivePattern {
    SensitivePattern {
        name: name.into(),
        pattern: pattern.into(),
        weight,
    }
}

pub fn default_sensitive_patterns() -> Vec<SensitivePattern> {
    vec![
        pattern(
            "admin",
            r"(?i)(^|/)(admin|_admin|administrator|internal/admin)(/|$)",
            6.0,
        ),
        pattern("actuator", r"(?i)(^|/)actuator(/|$)", 6.0),
        pattern("debug", r"(?i)(^|/)(debug|pprof|_debug)(/|$)", 6.0),
        pattern(
            "metrics",
            r"(?i)(^|/)(metrics|prometheus|stats/prometheus)(/|$)",
            3.0,
        ),
        pattern(
            "migrations",
            r"(?i)(^|/)(migrate|migrations?|flyway|liquibase)(/|$)",
            5.0,
        ),
        pattern(
            "envoy-admin",
            r"(^|:)15000$|(^|/)(config_dump|clusters|quitquitquit|drain_listeners)(/|$)",
            7.0,
        ),
        pattern(
            "cloud-metadata",
            r"169\.254\.169\.254|metadata\.google\.internal|(^|/)latest/meta-data(/|$)",
            9.0,
        ),
    ]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    pub min_score: f64,
    #[serde(with = "humantime_serde")]
    pub incident_window: Duration,
    pub max_trace_ids: usize,
    pub min_entry_calls: f64,
    pub min_mtls_calls: f64,
    pub max_tracked_alerts: usize,
    pub sensitive: Vec<SensitivePattern>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_score: DEFAULT_MIN_SCORE,
            incident_window: DEFAULT_INCIDENT_WINDOW,
            max_trace_ids: DEFAULT_MAX_TRACE_IDS,
            min_entry_calls: DEFAULT_MIN_ENTRY_CALLS,
            min_mtls_calls: DEFAULT_MIN_MTLS_CALLS,
            max_tracked_alerts: DEFAULT_MAX_TRACKED_ALERTS,
            sensitive: default_sensitive_patterns(),
        }
    }
}

impl DetectorConfig {
    pub fn validate(&self) -> Result<(), DetectorError> {
        if !self.min_score.is_finite() || self.min_score < 0.0 {
            return Err(DetectorError::Config(
                "min_score must be a finite number ≥ 0".into(),
            ));
        }
        if self.max_tracked_alerts == 0 {
            return Err(DetectorError::Config(
                "max_tracked_alerts must be at least 1".into(),
            ));
        }
        for p in &self.sensitive {
            regex::Regex::new(&p.pattern).map_err(|e| {
                DetectorError::Config(format!("sensitive pattern {:?}: {e}", p.name))
            })?;
            if !p.weight.is_finite() || p.weight < 0.0 {
                return Err(DetectorError::Config(format!(
                    "sensitive pattern {:?}: weight must be ≥ 0",
                    p.name
                )));
            }
        }
        Ok(())
    }
}
