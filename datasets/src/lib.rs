//! Data for measuring eastwest. This crate owns the mesh traffic generator
//! (topologies, load shapes, rollouts, jobs, sampling), the labelled attack and
//! benign-change scenarios, converters from public trace formats (Nezha CSV, Zipkin v2)
//! to OTLP, and replay of OTLP files to a receiver. It does not detect or learn.
#![forbid(unsafe_code)]

mod error;

pub use error::DatasetError;
