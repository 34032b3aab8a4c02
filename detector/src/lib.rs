//! Judging calls against the baseline. This crate owns the detectors, their calibrated
//! scores, the alert and incident model (dedup, budgets, lateral-movement paths) and the
//! evaluation harness. It does not store or deliver alerts (that is `eastwest-api`) and
//! it does not learn the baseline (that is `eastwest-baseline`).
#![forbid(unsafe_code)]

mod error;

pub use error::DetectorError;
