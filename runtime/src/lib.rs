//! The runtime: the one pipeline every command drives. It owns the receivers-to-alerts
//! wiring (OTLP admission → bounded queue → pairing → event-time order → engine → alert
//! sink), the event-time driver (watermark, allowed lateness, idle advance, window
//! closing), persistence (call history, baseline snapshots), the state the API reads,
//! supervision and ordered shutdown, and `eval` (scenarios fed through the same path).
//! It does not parse the command line (the binary does), decode OTLP or detect anything
//! itself (the collector and detector crates do).
#![forbid(unsafe_code)]

mod backend;
mod clock;
mod config;
mod core;
mod error;
mod eval;
mod pipeline;
mod published;
mod serve;
mod storage;

pub use clock::{EventClock, call_order};
pub use config::{
    DEFAULT_ALLOWED_LATENESS, DEFAULT_DATA_DIR, DEFAULT_FUTURE_SKEW, DEFAULT_IDLE_ADVANCE,
    DEFAULT_MAX_AGE, DEFAULT_SHUTDOWN_GRACE, EastwestConfig, PipelineConfig,
};
pub use core::{Core, CoreParts, FAILPOINT_ENV};
pub use error::RuntimeError;
pub use eval::{ScenarioRun, evaluate_data, evaluate_dir, run_scenario};
pub use serve::{Running, cancel_on_signals, start};
pub use storage::{StorageConfig, StorageMetrics, baseline_dir, restore_baseline};
