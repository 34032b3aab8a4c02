//! Least-privilege authorization policies from what eastwest observed. This crate owns
//! the rule set compiled from the baseline or the call history (per destination
//! workload: which callers, by SPIFFE identity, use which methods, routes and ports),
//! its compilation into Istio `AuthorizationPolicy`, Kubernetes `NetworkPolicy`,
//! `CiliumNetworkPolicy` and Linkerd policy through typed bindings, reading such
//! policies back, each dialect's matching semantics, backtests and drift over the
//! Parquet history, and the minimal deny rule for an alert. It applies nothing to a
//! cluster, does not detect, and does not own the data dir's formats (the baseline
//! crate does) or the alert store (the API does: callers pass alerts in).
#![forbid(unsafe_code)]

mod backtest;
mod compile;
pub mod crd;
mod deny;
mod document;
mod drift;
mod error;
mod files;
pub mod fuzzing;
mod history;
mod r#match;
mod measure;
pub mod names;
mod observe;
mod rules;
mod time;

pub use backtest::{AlertOutcome, BacktestReport, EdgeRoute, backtest};
pub use compile::{Compiled, compile};
pub use deny::{DenySuggestion, deny_documents, deny_rules};
pub use document::{Document, Format, MAX_DOCUMENTS, MAX_YAML_BYTES, parse_yaml, to_yaml};
pub use drift::{BROAD_USED_ROUTES, BroadRule, DriftReport, UnusedRule, drift};
pub use error::PolicyError;
pub use files::read_files;
pub use history::{CallGroup, call_groups};
pub use r#match::{CallView, PolicySet, Verdict};
pub use measure::{DialectFigures, ScenarioFigures, markdown, measure};
pub use observe::rules_from_data_dir;
pub use rules::{Excluded, Peer, Rule, RuleSet, RuleSource, WorkloadRules};
pub use time::parse_time;

#[cfg(test)]
mod data_dir_tests;
#[cfg(test)]
mod overflow_tests;
#[cfg(test)]
mod round_trip_tests;
#[cfg(test)]
mod testdata;
