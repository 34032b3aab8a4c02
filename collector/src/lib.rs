//! The ingest edge of eastwest. This crate owns everything between the wire and a
//! [`eastwest_model::Call`]: the OTLP gRPC and HTTP receivers (traces and logs), their
//! limits and error mapping, the access-log parsers (Istio text, JSON, Envoy OTLP
//! access-log records), span pairing into calls and their normalisation (workloads,
//! routes, identities, request entry). It does not learn or judge calls: it hands them
//! downstream through a bounded channel and counts everything it rejects or drops.
#![forbid(unsafe_code)]

pub mod accesslog;
pub mod dedup;
mod error;
pub mod metrics;
pub mod otlp;
mod pipeline;
pub mod spans;

pub use error::CollectorError;
pub use metrics::{CollectorMetrics, MetricsSnapshot, RejectReason};
pub use otlp::{IngestBatch, IngestError, ReceiverConfig, Receivers};
pub use pipeline::CallExtractor;
pub use spans::{NormalizerConfig, NormalizerStats, SpanNormalizer, template_path};
