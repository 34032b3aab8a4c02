//! The ingest counters as `/api/v1/stats` shows them: the collector fills them, the API
//! serves them, so the shape lives here where both can name it.

use serde::{Deserialize, Serialize};

/// Point-in-time copy of the collector's counters (served by `/api/v1/stats`). The short
/// top-level names (`spans`, `logs`, `calls`, `rejected`, `dropped`) are the design's
/// stats contract; the detailed blocks follow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Spans accepted into the pipeline.
    pub spans: u64,
    /// Log records accepted into the pipeline.
    pub logs: u64,
    pub calls: u64,
    /// Spans and log records rejected by validation, plus whole requests refused.
    pub rejected: u64,
    /// Items lost after acceptance (pairing evictions, unparsable log records).
    pub dropped: u64,
    pub span_counts: SignalSnapshot,
    pub log_record_counts: SignalSnapshot,
    pub requests_rejected: RequestsRejected,
    pub dedup_hits: u64,
    pub log_records_unparsed: u64,
    /// Spans and log records refused for a timestamp outside the accepted window.
    pub out_of_window: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalSnapshot {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestsRejected {
    pub malformed: u64,
    pub too_large: u64,
    pub unsupported_media_type: u64,
    pub queue_full: u64,
    pub shutting_down: u64,
    pub over_limit: u64,
    pub memory_budget: u64,
}
