//! Learner configuration: learning period, windows, cardinality caps, retention.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::BaselineError;

pub const DEFAULT_LEARNING_PERIOD: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_WINDOW_HISTORY: usize = 1440;
pub const DEFAULT_MAX_EDGES: usize = 20_000;
pub const DEFAULT_MAX_ENDPOINTS: usize = 100_000;
pub const DEFAULT_MAX_CONTEXTS: usize = 50_000;
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Distinct values at one path position (same edge, method and prefix) that make it a
/// learned parameter (see `learned_routes`).
pub const DEFAULT_ROUTE_PARAM_MIN_VALUES: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Event time from the first call until detection starts.
    #[serde(with = "humantime_serde")]
    pub learning_period: Duration,
    /// Event-time window for fan-out and rate histories.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Closed windows kept per source / edge history.
    pub max_window_history: usize,
    /// Cardinality caps: once a table is full, new keys are not learned (overflow counter).
    pub max_edges: usize,
    pub max_endpoints: usize,
    /// Cap on edge contexts plus endpoint contexts.
    pub max_contexts: usize,
    /// Entries unseen for this long (event time) age out.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Distinct values one HTTP path position takes (same edge, method and prefix) before
    /// it is learned as a parameter; raw paths with a new value there are then known.
    pub route_param_min_values: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            learning_period: DEFAULT_LEARNING_PERIOD,
            window: DEFAULT_WINDOW,
            max_window_history: DEFAULT_MAX_WINDOW_HISTORY,
            max_edges: DEFAULT_MAX_EDGES,
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            max_contexts: DEFAULT_MAX_CONTEXTS,
            retention: DEFAULT_RETENTION,
            route_param_min_values: DEFAULT_ROUTE_PARAM_MIN_VALUES,
        }
    }
}

impl BaselineConfig {
    pub fn validate(&self) -> Result<(), BaselineError> {
        if self.window.is_zero() {
            return Err(BaselineError::Config(
                "window must be greater than zero".into(),
            ));
        }
        if self.max_window_history == 0 {
            return Err(BaselineError::Config(
                "max_window_history must be at least 1".into(),
            ));
        }
        if self.max_edges == 0 || self.max_endpoints == 0 || self.max_contexts == 0 {
            return Err(BaselineError::Config(
                "cardinality caps must be at least 1".into(),
            ));
        }
        if self.retention.is_zero() {
            return Err(BaselineError::Config(
                "retention must be greater than zero".into(),
            ));
        }
        if self.route_param_min_values < 2 {
            return Err(BaselineError::Config(
                "route_param_min_values must be at least 2".into(),
            ));
        }
        Ok(())
    }
}
