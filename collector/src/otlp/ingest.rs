//! What both receivers share: the batch type they hand downstream, the ways a request
//! can be refused, and admission (budget → decode → validate → count → queue).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::body::{Encoding, gunzip_capped};
use super::budget::{MemoryBudget, Reservation};
use super::config::ReceiverConfig;
use super::shape::{self, RequestLimits, Shape};
use super::validate::{
    Rejections, TimeWindow, log_record_count, span_count, validate_logs, validate_traces,
    wall_clock_ns,
};
use super::wire;
use crate::metrics::{CollectorMetrics, RejectReason, SignalCounters};
use crate::spans::SpanBatch;

/// One accepted export request, validated, on its way to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestBatch {
    Traces(ExportTraceServiceRequest),
    /// A traces request already read into pairing form on the receiver's thread.
    Spans(SpanBatch),
    Logs(ExportLogsServiceRequest),
}

impl IngestBatch {
    /// The newest event time in the batch (span start, log record time), if any: what
    /// moves a pipeline's watermark even while no call has completed yet.
    pub fn max_event_time_ns(&self) -> Option<i64> {
        let max = match self {
            IngestBatch::Traces(req) => req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.start_time_unix_nano)
                .max(),
            IngestBatch::Spans(batch) => return batch.max_event_time_ns(),
            IngestBatch::Logs(req) => req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
                .map(super::validate::log_record_time)
                .max(),
        };
        max.map(|m| m.min(i64::MAX as u64) as i64)
    }
}

/// Why a whole request is refused. Each edge maps these to its status codes in one place
/// (`grpc::status_for`, `http::error_response`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedEncoding(String),
    #[error("request exceeds a receiver limit: {0}")]
    OverLimit(String),
    #[error("ingest queue is full, retry later")]
    QueueFull,
    #[error("the receivers' memory budget is in use by other requests, retry later")]
    OverBudget,
    #[error("collector is shutting down")]
    ShuttingDown,
}

impl IngestError {
    pub fn reason(&self) -> RejectReason {
        match self {
            IngestError::Malformed(_) => RejectReason::Malformed,
            IngestError::TooLarge { .. } => RejectReason::TooLarge,
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => {
                RejectReason::UnsupportedMediaType
            }
            IngestError::OverLimit(_) => RejectReason::OverLimit,
            IngestError::QueueFull => RejectReason::QueueFull,
            IngestError::OverBudget => RejectReason::MemoryBudget,
            IngestError::ShuttingDown => RejectReason::ShuttingDown,
        }
    }
}

/// An accepted batch on its way to the pipeline, holding its share of the receivers'
/// memory budget until the pipeline has processed it.
#[derive(Debug)]
pub struct Queued {
    batch: IngestBatch,
    reservation: Reservation,
}

impl Queued {
    /// A batch that holds no budget (tests, benches, trusted in-process feeders).
    pub fn unbudgeted(batch: IngestBatch) -> Self {
        Self {
            batch,
            reservation: MemoryBudget::default().reservation(),
        }
    }

    pub fn batch(&self) -> &IngestBatch {
        &self.batch
    }

    /// The batch, and the reservation to drop once it is processed.
    pub fn into_parts(self) -> (IngestBatch, Reservation) {
        (self.batch, self.reservation)
    }
}

/// An export request's body as it came off the wire.
#[derive(Debug)]
pub struct WireRequest {
    pub bytes: Bytes,
    pub encoding: Encoding,
    pub gzip: bool,
    /// Budget already held for `bytes` while they were read.
    pub reservation: Reservation,
}

/// Admission shared by both receivers and by in-process feeders (`eval`) that must take
/// the very same path: decode under the memory budget and the per-request limits (on
/// the blocking pool, never on the threads that serve the API and health checks),
/// validate, read spans, queue.
#[derive(Clone)]
pub struct Admission {
    tx: mpsc::Sender<Queued>,
    pub(crate) metrics: Arc<CollectorMetrics>,
    /// Hand traces downstream as raw requests instead of [`SpanBatch`]es.
    raw_traces: bool,
    time_window: TimeWindow,
    /// How long a request may wait for room in a full queue (or budget) before it is
    /// refused.
    queue_wait: Duration,
    limits: RequestLimits,
    max_body_bytes: usize,
    budget: MemoryBudget,
    /// Decodes running at once: one per core, so a burst queues here instead of
    /// oversubscribing the blocking pool.
    decoders: Arc<Semaphore>,
}

impl Admission {
    pub fn new(
        tx: mpsc::Sender<Queued>,
        metrics: Arc<CollectorMetrics>,
        time_window: TimeWindow,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let defaults = ReceiverConfig::default();
        Self {
            tx,
            metrics,
            raw_traces: true,
            time_window,
            queue_wait: defaults.queue_wait,
            limits: defaults.limits(),
            max_body_bytes: defaults.max_body_bytes,
            budget: MemoryBudget::default(),
            decoders: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Applies the receivers' limits, memory budget and queue wait.
    pub fn configured(mut self, config: &ReceiverConfig) -> Self {
        self.queue_wait = config.queue_wait;
        self.limits = config.limits();
        self.max_body_bytes = config.max_body_bytes;
        self.budget = MemoryBudget::new(
            config.memory_budget_bytes,
            self.metrics.memory_reserved.clone(),
        );
        self
    }

    /// Wait up to `wait` for room in a full queue before refusing a request: a burst is
    /// absorbed in arrival order instead of being refused and retried out of order.
    pub fn with_queue_wait(mut self, wait: Duration) -> Self {
        self.queue_wait = wait;
        self
    }

    /// Reads spans into pairing form before queueing them.
    pub fn reading_spans(mut self) -> Self {
        self.raw_traces = false;
        self
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub(crate) fn queue_wait(&self) -> Duration {
        self.queue_wait
    }

    /// A reservation to grow while a body is read.
    pub(crate) fn reservation(&self) -> Reservation {
        self.budget.reservation()
    }

    /// Validates and queues an already decoded traces request (in-process feeders).
    pub async fn traces(&self, req: ExportTraceServiceRequest) -> Result<Rejections, IngestError> {
        let (window, raw) = (self.time_window, self.raw_traces);
        let prepared = self
            .off_thread(move || Ok(prepare_traces(req, &window, raw)))
            .await?;
        self.admit(&self.metrics.spans, prepared, self.budget.reservation())
            .await
    }

    /// Validates and queues an already decoded logs request (in-process feeders).
    pub async fn logs(&self, req: ExportLogsServiceRequest) -> Result<Rejections, IngestError> {
        let window = self.time_window;
        let prepared = self
            .off_thread(move || Ok(prepare_logs(req, &window)))
            .await?;
        self.admit(
            &self.metrics.log_records,
            prepared,
            self.budget.reservation(),
        )
        .await
    }

    /// Decodes, validates and queues a traces request off the wire.
    pub async fn traces_wire(&self, wire: WireRequest) -> Result<Rejections, IngestError> {
        let (window, raw) = (self.time_window, self.raw_traces);
        let (prepared, reservation) = self
            .decode_wire(
                wire,
                if raw {
                    shape::traces_protobuf
                } else {
                    shape::traces_protobuf_for_reader
                },
                move |bytes, encoding, limits, shape| {
                    if encoding == Encoding::Protobuf && !raw {
                        return read_traces(bytes, shape, limits, &window);
                    }
                    let req: ExportTraceServiceRequest = decode_message(bytes, encoding)?;
                    if encoding == Encoding::Json {
                        shape::check_traces(&req, limits)?;
                    }
                    Ok(prepare_traces(req, &window, raw))
                },
            )
            .await?;
        self.admit(&self.metrics.spans, prepared, reservation).await
    }

    /// Decodes, validates and queues a logs request off the wire.
    pub async fn logs_wire(&self, wire: WireRequest) -> Result<Rejections, IngestError> {
        let window = self.time_window;
        let (prepared, reservation) = self
            .decode_wire(
                wire,
                shape::logs_protobuf,
                move |bytes, encoding, limits, _| {
                    let req: ExportLogsServiceRequest = decode_message(bytes, encoding)?;
                    if encoding == Encoding::Json {
                        shape::check_logs(&req, limits)?;
                    }
                    Ok(prepare_logs(req, &window))
                },
            )
            .await?;
        self.admit(&self.metrics.log_records, prepared, reservation)
            .await
    }

    /// Inflates, sizes and decodes a body, holding budget for each step before it
    /// allocates: the body, then the inflated body, then the decoded request.
    async fn decode_wire(
        &self,
        wire: WireRequest,
        protobuf_shape: fn(&[u8], &RequestLimits) -> Result<Shape, IngestError>,
        decode: impl FnOnce(&[u8], Encoding, &RequestLimits, &Shape) -> Result<Prepared, IngestError>
        + Send
        + 'static,
    ) -> Result<(Prepared, Reservation), IngestError> {
        let WireRequest {
            bytes,
            encoding,
            gzip,
            mut reservation,
        } = wire;
        let wait = self.queue_wait;
        reservation.grow_to(bytes.len() as u64, wait).await?;
        let body: Bytes = if gzip {
            let limit = self.max_body_bytes;
            reservation
                .grow_to((bytes.len() + limit) as u64, wait)
                .await?;
            let inflated = self
                .off_thread(move || gunzip_capped(&bytes, limit))
                .await?;
            reservation.shrink_to(inflated.len() as u64);
            Bytes::from(inflated)
        } else {
            bytes
        };
        let limits = self.limits;
        let (body, shape) = self
            .off_thread(move || {
                let shape = match encoding {
                    Encoding::Protobuf => protobuf_shape(&body, &limits)?,
                    Encoding::Json => Shape {
                        decoded_bytes: shape::json_bound(&body, &limits)?,
                        ..Shape::default()
                    },
                };
                Ok((body, shape))
            })
            .await?;
        // What the walk left to the reader decodes to about its own size; the walk keeps
        // `decoded_bytes` within the limit, and the reader refuses the request when the
        // real total is over it.
        let decoded_bytes =
            (shape.decoded_bytes + shape.unwalked_bytes).min(limits.max_decoded_bytes);
        // The body, the decoded request, and the batch read from it (about the same size
        // again) are alive together for a moment. (Protobuf spans read straight from the
        // body build no decoded request; the reservation stays the same, on the safe side.)
        reservation
            .grow_to(body.len() as u64 + GROWTH_ON_READ * decoded_bytes, wait)
            .await?;
        let prepared = self
            .off_thread(move || decode(&body, encoding, &limits, &shape))
            .await?;
        // Only the batch is left. Its real size can exceed the estimate (resource names
        // are copied into every span): then it waits for that much budget too. A batch
        // over the estimate exists unbudgeted only for this moment, one per decoder.
        let kept = prepared.batch_bytes.unwrap_or(decoded_bytes);
        reservation.grow_to(kept, wait).await?;
        reservation.shrink_to(kept);
        Ok((prepared, reservation))
    }

    /// Runs `work` on the blocking pool, at most one per core at a time.
    async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
    ) -> Result<T, IngestError> {
        let _slot = self
            .decoders
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(IngestError::ShuttingDown),
        }
    }

    async fn admit(
        &self,
        counters: &SignalCounters,
        prepared: Prepared,
        reservation: Reservation,
    ) -> Result<Rejections, IngestError> {
        let Prepared {
            batch,
            received,
            rejections,
            batch_bytes: _,
        } = prepared;
        counters.received.fetch_add(received, Ordering::Relaxed);
        counters
            .rejected
            .fetch_add(rejections.count, Ordering::Relaxed);
        self.metrics
            .records_out_of_window
            .fetch_add(rejections.out_of_window, Ordering::Relaxed);
        let accepted = received - rejections.count;
        if accepted == 0 {
            return Ok(rejections);
        }
        let queued = Queued { batch, reservation };
        let queued = match self.tx.try_send(queued) {
            Err(TrySendError::Full(queued)) if !self.queue_wait.is_zero() => {
                match tokio::time::timeout(self.queue_wait, self.tx.send(queued)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(IngestError::ShuttingDown),
                    Err(_) => Err(IngestError::QueueFull),
                }
            }
            Err(TrySendError::Full(_)) => Err(IngestError::QueueFull),
            Err(TrySendError::Closed(_)) => Err(IngestError::ShuttingDown),
            Ok(()) => Ok(()),
        };
        match queued {
            Ok(()) => {
                counters.accepted.fetch_add(accepted, Ordering::Relaxed);
                Ok(rejections)
            }
            Err(e) => {
                // The client retries the whole request, so rejected items are not
                // double-counted as rejected: move them to "refused" with the rest.
                counters
                    .rejected
                    .fetch_sub(rejections.count, Ordering::Relaxed);
                self.metrics
                    .records_out_of_window
                    .fetch_sub(rejections.out_of_window, Ordering::Relaxed);
                counters.refused.fetch_add(received, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Counts a refused request; every edge calls this from its single error mapper.
    pub(crate) fn count_refusal(&self, err: &IngestError) {
        self.metrics.record_rejected_request(err.reason());
    }
}

/// The decoded request and the batch read from it are alive together while spans are
/// read: reserve for both.
const GROWTH_ON_READ: u64 = 2;

/// A request validated and read into the batch that is queued.
struct Prepared {
    batch: IngestBatch,
    received: u64,
    rejections: Rejections,
    /// What the batch holds in memory, when known better than the decoded size.
    batch_bytes: Option<u64>,
}

fn prepare_traces(mut req: ExportTraceServiceRequest, window: &TimeWindow, raw: bool) -> Prepared {
    let received = span_count(&req);
    let rejections = validate_traces(&mut req, window, wall_clock_ns());
    let (batch, batch_bytes) = if raw {
        (IngestBatch::Traces(req), None)
    } else {
        let spans = SpanBatch::from_request(&req);
        let bytes = spans.memory_bytes();
        (IngestBatch::Spans(spans), Some(bytes))
    };
    Prepared {
        batch,
        received,
        rejections,
        batch_bytes,
    }
}

/// A protobuf request read straight into pairing form (see [`super::wire`]).
fn read_traces(
    bytes: &[u8],
    shape: &Shape,
    limits: &RequestLimits,
    window: &TimeWindow,
) -> Result<Prepared, IngestError> {
    let read = wire::read_traces(bytes, shape, limits, window, wall_clock_ns())?;
    let bytes = read.batch.memory_bytes();
    Ok(Prepared {
        batch: IngestBatch::Spans(read.batch),
        received: read.received,
        rejections: read.rejections,
        batch_bytes: Some(bytes),
    })
}

fn prepare_logs(mut req: ExportLogsServiceRequest, window: &TimeWindow) -> Prepared {
    let received = log_record_count(&req);
    let rejections = validate_logs(&mut req, window, wall_clock_ns());
    Prepared {
        batch: IngestBatch::Logs(req),
        received,
        rejections,
        batch_bytes: None,
    }
}

fn decode_message<T: prost::Message + DeserializeOwned + Default>(
    bytes: &[u8],
    encoding: Encoding,
) -> Result<T, IngestError> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(bytes).map_err(|e| IngestError::Malformed(format!("invalid protobuf: {e}")))
        }
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| IngestError::Malformed(format!("invalid OTLP JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::fixtures::*;
    use super::*;

    #[tokio::test]
    async fn accepted_items_are_queued_and_counted() {
        let (tx, mut rx) = mpsc::channel(1);
        let admission = Admission::new(tx, Arc::default(), TimeWindow::default());
        let req = request(vec![
            resource_spans(Some("cart"), vec![span(1), span(2)]),
            resource_spans(None, vec![span(3)]),
        ]);
        let r = admission.traces(req).await.unwrap();
        assert_eq!(r.count, 1);
        let IngestBatch::Traces(queued) = rx.try_recv().unwrap().into_parts().0 else {
            panic!("expected traces")
        };
        assert_eq!(span_count(&queued), 2);
        let s = admission.metrics.snapshot().span_counts;
        assert_eq!(
            (s.received, s.accepted, s.rejected, s.refused),
            (3, 2, 1, 0)
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_whole_request_after_its_wait() {
        let (tx, _rx) = mpsc::channel(1);
        let admission = Admission::new(tx, Arc::default(), TimeWindow::default())
            .with_queue_wait(std::time::Duration::from_millis(20));
        let req = request(vec![
            resource_spans(Some("cart"), vec![span(1)]),
            resource_spans(None, vec![span(2)]),
        ]);
        admission.traces(req.clone()).await.unwrap();
        assert_eq!(admission.traces(req).await, Err(IngestError::QueueFull));
        let s = admission.metrics.snapshot().span_counts;
        assert_eq!(
            (s.received, s.accepted, s.rejected, s.refused),
            (4, 1, 1, 2)
        );
    }

    #[tokio::test]
    async fn a_full_queue_takes_a_request_once_room_frees_up_within_the_wait() {
        let (tx, mut rx) = mpsc::channel(1);
        let admission = Admission::new(tx, Arc::default(), TimeWindow::default())
            .with_queue_wait(std::time::Duration::from_secs(5));
        let req = request(vec![resource_spans(Some("cart"), vec![span(1)])]);
        admission.traces(req.clone()).await.unwrap();
        let drain = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            rx.recv().await.unwrap();
            rx
        });
        admission.traces(req).await.unwrap();
        let mut rx = drain.await.unwrap();
        assert!(rx.try_recv().is_ok(), "the waiting request was queued");
    }

    #[tokio::test]
    async fn a_closed_queue_means_shutting_down() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let admission = Admission::new(tx, Arc::default(), TimeWindow::default());
        let req = request(vec![resource_spans(Some("cart"), vec![span(1)])]);
        assert_eq!(admission.traces(req).await, Err(IngestError::ShuttingDown));
    }
}
