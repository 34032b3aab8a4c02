//! The learned model of normal traffic. This crate owns what "normal" means: the
//! baseline tables (edges, endpoints, contexts, per-source fan-out and per-edge rate per
//! event-time window, identities per workload), the learning state machine, their
//! persistence as Parquet in the data dir, SQL over them with DataFusion, and the
//! in-memory [`LookupIndex`] the hot path reads. It does not decide what is suspicious
//! (that is `eastwest-detector`) and it never parses telemetry (that is the collector).
#![forbid(unsafe_code)]

mod config;
mod endpoints;
mod error;
mod history;
mod history_columns;
mod index;
mod learned_routes;
mod learner;
mod names;
mod query;
mod rebuild;
mod rebuild_windows;
mod rollout;
mod rollup;
mod snapshot;
mod tables;

#[cfg(test)]
mod persist_tests;

pub use eastwest_model::{BaselineCounts, BaselineStatus, RolloutChange};
pub use error::BaselineError;
pub use history::{CALLS_DIR, DEFAULT_FLUSH_ROWS, HistoryWriter, calls_batch, calls_schema};
pub use index::{
    CallKeys, CallStats, ContextStats, EdgeKey, EdgeStats, EndpointKey, EndpointStats, EntryKey,
    IdentityStats, InboundTls, LookupIndex, NameId, Names, SourceStats, WindowHistory,
};
pub use learner::{Baseline, BaselineConfig, LearningState, MAX_PRINCIPALS_PER_WORKLOAD};
pub use query::{BASELINE_DIR, format_table, session, sql};
pub use rebuild::{RebuildStats, rebuild};
pub use rollup::{
    DAILY_DIR, DAILY_TABLE, DEFAULT_ROLLUP_RETENTION, EdgeDay, MAX_ROLLUP_PRINCIPALS,
    MAX_ROLLUP_TRACES, MaintainStats, NS_PER_DAY, daily_batch, daily_schema, edge_days, maintain,
    maintain_blocking, raw_complete_from, rolled_up_days, stored_edge_days,
};
pub use snapshot::{
    FORMAT_VERSION, KEEP_SNAPSHOTS, Manifest, SnapshotData, list_snapshots, load_snapshot,
};
pub use tables::{TABLES, from_tables, to_tables};
