//! The learned model of normal traffic. This crate owns what "normal" means: the
//! baseline tables (edges, endpoints, contexts, per-source fan-out and per-edge rate per
//! event-time window, identities per workload), the learning state machine, their
//! persistence as Parquet in the data dir, SQL over them with DataFusion, and the
//! in-memory [`LookupIndex`] the hot path reads. It does not decide what is suspicious
//! (that is `eastwest-detector`) and it never parses telemetry (that is the collector).
#![forbid(unsafe_code)]

mod config;
mod error;
mod index;
mod learner;
mod rollout;

pub use error::BaselineError;
pub use index::{
    ContextStats, EdgeKey, EdgeStats, EndpointKey, EndpointStats, IdentityStats, LookupIndex,
    SourceStats, WindowHistory,
};
pub use learner::{
    Baseline, BaselineConfig, BaselineCounts, BaselineStatus, LearningState, RolloutChange,
};
