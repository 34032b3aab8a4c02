//! Shared domain types for every eastwest crate: [`Call`], [`Workload`], [`Entry`],
//! [`Alert`] and their small enums. This crate owns the vocabulary and its JSON shape
//! (the alert schema in the design's external contract); it owns no behaviour beyond
//! trivial helpers, pulls in no servers, and must stay tiny so that everything can
//! depend on it.
#![forbid(unsafe_code)]

mod alert;
pub mod attack;
mod baseline_status;
mod call;
mod incident;
mod stats;

pub use alert::{Alert, AlertKind, AlertState, EntryRef, Severity};
pub use baseline_status::{BaselineCounts, BaselineStatus, LearningPhase, RolloutChange};
pub use call::{Call, Entry, Protocol, Workload, format_event_time};
// Strings of calls and workloads: short ones (names, methods, routes, ids) stay inline.
pub use compact_str::{CompactString, ToCompactString, format_compact};
pub use incident::{Incident, Label};
pub use stats::{MetricsSnapshot, RequestsRejected, SignalSnapshot};
