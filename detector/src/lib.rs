//! Judging calls against the baseline. This crate owns the detectors, their calibrated
//! scores, the alert and incident model (dedup, lateral-movement paths) and the engine
//! that runs them on event time. It does not store or deliver alerts (that is
//! `eastwest-api`) and it does not learn the baseline (that is `eastwest-baseline`).
#![forbid(unsafe_code)]

mod config;
mod engine;
mod error;
mod findings;
mod score;

pub use config::{DetectorConfig, SensitivePattern, default_sensitive_patterns};
pub use engine::{Engine, EngineOutput};
pub use error::DetectorError;
pub use score::{p_novel, p_rare_upper, surprise};
