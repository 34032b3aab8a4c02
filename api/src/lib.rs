//! The operator-facing edge of eastwest. This crate owns the HTTP API (REST, SSE,
//! Prometheus `/metrics`, OpenAPI), the durable alert store (SQLite), webhook delivery
//! from a durable outbox, authentication, and serving the embedded dashboard. It does
//! not detect anything: alerts arrive already scored from `eastwest-detector`.
#![forbid(unsafe_code)]

mod error;

pub use error::ApiError;
