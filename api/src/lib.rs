//! The operator-facing edge of eastwest. This crate owns the HTTP API (REST, SSE,
//! Prometheus `/metrics`, OpenAPI), the durable alert store (SQLite), webhook delivery
//! from a durable outbox, authentication, and serving the embedded dashboard. It does
//! not detect anything: alerts arrive already scored from `eastwest-detector`.
//!
//! Wiring: open an [`AlertStore`], build an [`ApiState`] over it and a [`Backend`]
//! (pipeline state), give the pipeline [`ApiState::sink`], start
//! [`ApiState::start_webhook_worker`] and [`serve`] the router.
#![forbid(unsafe_code)]

mod backend;
mod config;
mod dashboard;
mod error;
mod events;
mod evidence;
mod graph;
mod graph_view;
mod http;
mod metrics;
mod sink;
mod state;
pub mod store;
mod trace_link;
pub mod webhook;

pub use backend::{Backend, RecentCalls, Stats};
pub use config::{ApiConfig, WebhookConfig, WebhookKind};
pub use error::ApiError;
pub use evidence::{Evidence, Rendered};
pub use graph::{
    EdgeDetail, EdgeStatus, EndpointSummary, GraphEdge, GraphNode, GraphSnapshot, blast_radius,
};
pub use graph_view::{GraphView, NamespaceEdge, NamespaceGraph, NamespaceNode};
pub use http::{API_ROUTES, SYSTEM_ROUTES, router, serve};
pub use metrics::{ApiMetrics, DeliveryOutcome};
pub use sink::AlertSink;
pub use state::ApiState;
pub use store::AlertStore;
pub use trace_link::{trace_url, validate_template};

/// The OpenAPI 3 document served at `/api/v1/openapi.json`.
pub const OPENAPI_DOCUMENT: &str = http::OPENAPI_DOCUMENT;
