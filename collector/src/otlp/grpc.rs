//! OTLP/gRPC: `TraceService` and `LogsService` on one tonic server. Errors map to gRPC
//! codes here only: handler refusals in [`status_for`], and tonic's own decode
//! failures (which it reports as INTERNAL / OUT_OF_RANGE) in [`normalize_codec_status`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

use super::body::Encoding;
use super::budget::Reservation;
use super::grpc_export::{Edge, Export, ExportServer};
use super::ingest::{Admission, IngestError, WireRequest};
use crate::CollectorError;
use crate::metrics::{CollectorMetrics, RejectReason};

/// HTTP/2 flow-control window per export stream.
const STREAM_WINDOW_BYTES: u32 = 4 << 20;
/// HTTP/2 flow-control window per connection (several exports in flight).
const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// Largest HTTP/2 frame the server accepts (the protocol's default is 16 KiB). Frames
/// the size of a whole export cost a second copy of it: tonic reserves a message's full
/// length in its buffer after the first frame already holds most of it, and h2's read
/// buffer grows to the frame. At 64 KiB both buffers stay small and warm.
const MAX_FRAME_BYTES: u32 = 64 << 10;

struct Handler {
    admission: Admission,
    retry_after_secs: u64,
}

impl Handler {
    /// tonic has already inflated a gzip message (within the decoded-size limit).
    fn wire(bytes: Bytes, reservation: Reservation) -> WireRequest {
        WireRequest {
            bytes,
            encoding: Encoding::Protobuf,
            gzip: false,
            reservation,
        }
    }

    /// The one place handler refusals become gRPC statuses (and are counted).
    fn status_for(&self, err: IngestError) -> Status {
        self.admission.count_refusal(&err);
        status_for(&err, self.retry_after_secs)
    }
}

impl Edge for Handler {
    fn reservation(&self) -> Reservation {
        self.admission.reservation()
    }

    fn queue_wait(&self) -> Duration {
        self.admission.queue_wait()
    }

    fn refuse(&self, err: IngestError) -> Status {
        self.status_for(err)
    }

    fn codec_refusal(&self, response: &mut http::Response<tonic::body::Body>) {
        normalize_codec_status(&self.admission.metrics, response);
    }
}

// `google.rpc.Status` details carrying a `google.rpc.RetryInfo`, which OTLP exporters
// honour as the back-off before retrying an UNAVAILABLE export.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StatusDetails {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

fn unavailable_with_retry_info(message: String, retry_after_secs: u64) -> Status {
    let retry = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: retry_after_secs as i64,
        }),
    };
    let details = StatusDetails {
        code: Code::Unavailable as i32,
        message: message.clone(),
        details: vec![ProtoAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: prost::Message::encode_to_vec(&retry),
        }],
    };
    Status::with_details(
        Code::Unavailable,
        message,
        prost::Message::encode_to_vec(&details).into(),
    )
}

pub(crate) fn status_for(err: &IngestError, retry_after_secs: u64) -> Status {
    let message = err.to_string();
    match err {
        IngestError::Malformed(_) => Status::invalid_argument(message),
        IngestError::TooLarge { .. } | IngestError::OverLimit(_) => {
            Status::resource_exhausted(message)
        }
        IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => {
            Status::invalid_argument(message)
        }
        // Retryable per the OTLP spec.
        IngestError::QueueFull | IngestError::OverBudget | IngestError::ShuttingDown => {
            unavailable_with_retry_info(message, retry_after_secs)
        }
    }
}

/// `TraceService/Export`.
struct Traces(Arc<Handler>);

impl Export for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Response = ExportTraceServiceResponse;

    type Edge = Handler;

    fn edge(&self) -> &Handler {
        &self.0
    }

    fn export(
        &self,
        request: Bytes,
        reservation: Reservation,
    ) -> impl std::future::Future<Output = Result<Self::Response, Status>> + Send + 'static {
        let handler = self.0.clone();
        async move {
            let rejected = handler
                .admission
                .traces_wire(Handler::wire(request, reservation))
                .await
                .map_err(|e| handler.status_for(e))?;
            Ok(ExportTraceServiceResponse {
                partial_success: rejected.into_trace_partial_success(),
            })
        }
    }
}

/// `LogsService/Export`.
struct Logs(Arc<Handler>);

impl Export for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Response = ExportLogsServiceResponse;

    type Edge = Handler;

    fn edge(&self) -> &Handler {
        &self.0
    }

    fn export(
        &self,
        request: Bytes,
        reservation: Reservation,
    ) -> impl std::future::Future<Output = Result<Self::Response, Status>> + Send + 'static {
        let handler = self.0.clone();
        async move {
            let rejected = handler
                .admission
                .logs_wire(Handler::wire(request, reservation))
                .await
                .map_err(|e| handler.status_for(e))?;
            Ok(ExportLogsServiceResponse {
                partial_success: rejected.into_logs_partial_success(),
            })
        }
    }
}

/// tonic decodes (and decompresses) before our handler runs and reports a bad protobuf
/// as INTERNAL, an oversized message as OUT_OF_RANGE and a decompression bomb as
/// RESOURCE_EXHAUSTED. The OTLP spec wants INVALID_ARGUMENT and RESOURCE_EXHAUSTED, so
/// rewrite them on the way out and count them. Only for responses neither the handler
/// nor the budget refused: those are counted where they are made.
fn normalize_codec_status(
    metrics: &CollectorMetrics,
    response: &mut http::Response<tonic::body::Body>,
) {
    let Some(code) = response
        .headers()
        .get(Status::GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let Ok(code) = code.parse::<i32>() else {
        return;
    };
    let (reason, new_code) = match Code::from_i32(code) {
        Code::Internal => (RejectReason::Malformed, Code::InvalidArgument),
        Code::OutOfRange | Code::ResourceExhausted => {
            (RejectReason::TooLarge, Code::ResourceExhausted)
        }
        _ => return,
    };
    metrics.record_rejected_request(reason);
    response
        .headers_mut()
        .insert(Status::GRPC_STATUS, HeaderValue::from(new_code as i32));
}

pub(crate) async fn serve(
    listener: TcpListener,
    admission: Admission,
    max_body_bytes: usize,
    retry_after_secs: u64,
    cancel: CancellationToken,
) -> Result<(), CollectorError> {
    let handler = Arc::new(Handler {
        admission,
        retry_after_secs,
    });
    let traces = ExportServer::new(Arc::new(Traces(handler.clone())), max_body_bytes);
    let logs = ExportServer::new(Arc::new(Logs(handler)), max_body_bytes);
    tonic::transport::Server::builder()
        // OTLP exports are large (a collector batch is often megabytes): HTTP/2's
        // default 64 KiB windows would make every export wait on window updates.
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .add_service(traces)
        .add_service(logs)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            cancel.cancelled_owned(),
        )
        .await
        .map_err(|e| CollectorError::Serve(format!("OTLP gRPC server: {e}")))
}
