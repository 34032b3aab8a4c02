//! OTLP receivers: gRPC (tonic) and HTTP (axum) for traces and logs. Both hand the
//! body to one [`Admission`], which decodes it under a memory budget and per-request
//! limits, validates, counts, and queues [`IngestBatch`]es on a bounded channel: a full
//! queue or budget is a retryable refusal, never a blocked request or a silent drop.

mod body;
mod budget;
mod config;
mod fields;
mod grpc;
mod grpc_export;
mod http;
mod ingest;
pub mod shape;
mod validate;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::body::Encoding;
pub use self::budget::{MemoryBudget, Reservation};
pub use self::config::{
    DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR, DEFAULT_MAX_ATTRIBUTES_PER_ITEM, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DECODED_BYTES_PER_REQUEST, DEFAULT_MAX_GROUPS_PER_REQUEST,
    DEFAULT_MAX_RECORDS_PER_REQUEST, DEFAULT_MEMORY_BUDGET_BYTES, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_QUEUE_WAIT, DEFAULT_RETRY_AFTER, MAX_BODY_BYTES_LIMIT, ReceiverConfig,
};
pub use self::http::RpcStatus;
pub use self::ingest::{Admission, IngestBatch, IngestError, Queued, WireRequest};
pub use self::validate::{
    Rejections, TimeWindow, has_service_name, log_record_count, log_record_time, span_count,
    validate_traces, wall_clock_ns,
};
use crate::CollectorError;
use crate::metrics::CollectorMetrics;

/// Both receivers, bound but not yet serving (so callers can bind port 0 and read the
/// real addresses first).
#[derive(Debug)]
pub struct Receivers {
    grpc: TcpListener,
    http: TcpListener,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    config: ReceiverConfig,
    raw_traces: bool,
    time_window: TimeWindow,
}

async fn bind(addr: SocketAddr, what: &str) -> Result<(TcpListener, SocketAddr), CollectorError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| CollectorError::Bind {
            what: what.to_string(),
            addr,
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| CollectorError::Bind {
            what: what.to_string(),
            addr,
            source,
        })?;
    Ok((listener, local))
}

impl Receivers {
    pub async fn bind(config: &ReceiverConfig) -> Result<Receivers, CollectorError> {
        config.validate()?;
        let (grpc, grpc_addr) = bind(config.grpc_addr, "OTLP gRPC").await?;
        let (http, http_addr) = bind(config.http_addr, "OTLP HTTP").await?;
        Ok(Receivers {
            grpc,
            http,
            grpc_addr,
            http_addr,
            config: config.clone(),
            raw_traces: false,
            time_window: TimeWindow::default(),
        })
    }

    /// Hand traces downstream as the decoded requests ([`IngestBatch::Traces`]) instead
    /// of spans read into pairing form on the receiving thread ([`IngestBatch::Spans`]).
    pub fn with_raw_traces(mut self) -> Self {
        self.raw_traces = true;
        self
    }

    /// Refuse records whose timestamps lie outside `window` around the wall clock.
    pub fn with_time_window(mut self, window: TimeWindow) -> Self {
        self.time_window = window;
        self
    }

    pub fn grpc_local_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_local_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Serves both receivers until `cancel`; then stops accepting, finishes in-flight
    /// requests and returns. `tx` (and so the pipeline's input) is dropped on return.
    pub async fn serve(
        self,
        tx: mpsc::Sender<Queued>,
        metrics: Arc<CollectorMetrics>,
        cancel: CancellationToken,
    ) -> Result<(), CollectorError> {
        let mut admission =
            ingest::Admission::new(tx, metrics, self.time_window).configured(&self.config);
        if !self.raw_traces {
            admission = admission.reading_spans();
        }
        let router = http::router(admission.clone(), self.config.retry_after_secs());
        let grpc = grpc::serve(
            self.grpc,
            admission,
            self.config.max_body_bytes,
            self.config.retry_after_secs(),
            cancel.clone(),
        );
        let http = http::serve(self.http, router, cancel.clone());
        // If one server fails, try_join drops (stops) the other.
        tokio::try_join!(grpc, http).map(|_| ())
    }
}
