//! Judging calls against the baseline. This crate owns the detectors, their calibrated
//! scores, the alert and incident model (dedup, alert budget, lateral-movement paths),
//! the engine that runs them on event time, and the offline evaluation against labelled
//! datasets with two reference rules. It does not store or deliver alerts (that is
//! `eastwest-api`) and it does not learn the baseline (that is `eastwest-baseline`).
#![forbid(unsafe_code)]

mod alerts;
mod config;
mod engine;
mod error;
pub mod eval;
mod findings;
mod incidents;
mod new_edge;
mod new_workload;
mod rollout;
mod score;
#[doc(hidden)]
pub mod testmesh;
mod volume;
mod windows;

pub use alerts::{severity, stable_id};
pub use config::*;
pub use engine::{Engine, EngineOutput};
pub use error::DetectorError;
pub use eval::{
    AlertDigest, DEFAULT_SLACK, EvalReport, ReferenceRule, RuleTotals, ScenarioResult, score,
};
pub use findings::{OVERFLOW_ROUTE, spiffe_ns_sa};
pub use new_edge::{UNATTRIBUTED_SERVICE, is_unattributed};
pub use score::{Moments, nb_upper_tail, p_novel, p_rare_upper, poisson_upper_tail, surprise};
