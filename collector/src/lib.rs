//! The ingest edge of eastwest. This crate owns everything between the wire and a
//! [`eastwest_model::Call`]: the OTLP gRPC and HTTP receivers (traces and logs), their
//! limits and error mapping, the access-log parsers (Istio text, JSON, Envoy OTLP
//! access-log records), span pairing into calls and their normalisation (workloads,
//! routes, identities, request entry). It does not learn or judge calls: it hands them
//! downstream through a bounded channel and counts everything it rejects or drops.
//! It also holds the client side of `eastwest ingest-logs` (access-log files → OTLP/HTTP
//! logs) and the fuzz targets (`fuzzing`) run by `fuzz/` and by the smoke test.
#![forbid(unsafe_code)]

pub mod accesslog;
pub mod dedup;
mod error;
pub mod fuzzing;
pub mod ingest_logs;
pub mod metrics;
pub mod otlp;
mod pipeline;
pub mod sizes;
pub mod spans;
pub mod time_queue;

pub use error::CollectorError;
pub use ingest_logs::{IngestLogsOptions, IngestLogsReport, ingest_log_files};
pub use metrics::{CollectorMetrics, MetricsSnapshot, RejectReason};
pub use otlp::{
    Admission, IngestBatch, IngestError, Queued, ReceiverConfig, Receivers, TimeWindow,
    wall_clock_ns,
};
pub use pipeline::CallExtractor;
pub use spans::{NormalizerConfig, NormalizerStats, SpanBatch, SpanNormalizer, template_path};
pub use time_queue::TimeQueue;
