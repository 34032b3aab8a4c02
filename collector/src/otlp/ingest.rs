//! What both receivers share: the batch type they hand downstream, the ways a request
//! can be refused, and admission (validate → count → `try_send`, never blocking).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::validate::{
    Rejections, TimeWindow, log_record_count, span_count, validate_logs, validate_traces,
    wall_clock_ns,
};
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
    #[error("ingest queue is full, retry later")]
    QueueFull,
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
            IngestError::QueueFull => RejectReason::QueueFull,
            IngestError::ShuttingDown => RejectReason::ShuttingDown,
        }
    }
}

/// The validated-and-queued part of admission, shared by both receivers and by
/// in-process feeders (`eval`) that must take the very same path.
#[derive(Clone)]
pub struct Admission {
    tx: mpsc::Sender<IngestBatch>,
    pub(crate) metrics: Arc<CollectorMetrics>,
    /// Hand traces downstream as raw requests instead of [`SpanBatch`]es.
    raw_traces: bool,
    time_window: TimeWindow,
    /// How long a request may wait for room in a full queue before it is refused.
    queue_wait: std::time::Duration,
}

impl Admission {
    pub fn new(
        tx: mpsc::Sender<IngestBatch>,
        metrics: Arc<CollectorMetrics>,
        time_window: TimeWindow,
    ) -> Self {
        Self {
            tx,
            metrics,
            raw_traces: true,
            time_window,
            queue_wait: crate::otlp::DEFAULT_QUEUE_WAIT,
        }
    }

    /// Wait up to `wait` for room in a full queue before refusing a request: a burst is
    /// absorbed in arrival order instead of being refused and retried out of order.
    pub fn with_queue_wait(mut self, wait: std::time::Duration) -> Self {
        self.queue_wait = wait;
        self
    }

    /// Reads spans into pairing form here, on the receiving thread.
    pub fn reading_spans(mut self) -> Self {
        self.raw_traces = false;
        self
    }

    /// Validates and queues a traces request; `Ok` carries what validation rejected.
    pub async fn traces(
        &self,
        mut req: ExportTraceServiceRequest,
    ) -> Result<Rejections, IngestError> {
        let received = span_count(&req);
        let rejections = validate_traces(&mut req, &self.time_window, wall_clock_ns());
        let batch = if self.raw_traces {
            IngestBatch::Traces(req)
        } else {
            IngestBatch::Spans(SpanBatch::from_request(&req))
        };
        self.admit(&self.metrics.spans, received, rejections, batch)
            .await
    }

    pub async fn logs(&self, mut req: ExportLogsServiceRequest) -> Result<Rejections, IngestError> {
        let received = log_record_count(&req);
        let rejections = validate_logs(&mut req, &self.time_window, wall_clock_ns());
        self.admit(
            &self.metrics.log_records,
            received,
            rejections,
            IngestBatch::Logs(req),
        )
        .await
    }

    async fn admit(
        &self,
        counters: &SignalCounters,
        received: u64,
        rejections: Rejections,
        batch: IngestBatch,
    ) -> Result<Rejections, IngestError> {
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
        let queued = match self.tx.try_send(batch) {
            Err(TrySendError::Full(batch)) if !self.queue_wait.is_zero() => {
                match tokio::time::timeout(self.queue_wait, self.tx.send(batch)).await {
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
        let IngestBatch::Traces(queued) = rx.try_recv().unwrap() else {
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
