//! The ingest edge of eastwest. This crate owns everything between the wire and a
//! [`eastwest_model::Call`]: the OTLP gRPC and HTTP receivers (traces and logs), their
//! limits and error mapping, the access-log parsers (Istio text, JSON, Envoy OTLP
//! access-log records), span pairing into calls and their normalisation (workloads,
//! routes, identities, request entry). It does not learn or judge calls: it hands them
//! downstream through a bounded channel and counts everything it rejects or drops.
#![forbid(unsafe_code)]

mod error;

pub use error::CollectorError;
