//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs`, protobuf or JSON, optionally gzip.
//! Refusals map to HTTP statuses in one place, [`error_response`]; the body is a
//! `google.rpc.Status` in the request's encoding.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::body::{Encoding, is_gzip, read_capped};
use super::ingest::{Admission, IngestError, WireRequest};
use crate::CollectorError;

/// `google.rpc.Status` without `details`: the OTLP/HTTP error body.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone)]
struct HttpState {
    admission: Admission,
    retry_after_secs: u64,
}

pub(crate) fn router(admission: Admission, retry_after_secs: u64) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .with_state(HttpState {
            admission,
            retry_after_secs,
        })
}

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> Result<(), CollectorError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
        .map_err(|e| CollectorError::Serve(format!("OTLP HTTP server: {e}")))
}

async fn traces(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let outcome = async {
        let wire = read(&state, &headers, body).await?;
        let encoding = wire.encoding;
        let rejected = state
            .admission
            .traces_wire(wire)
            .await
            .map_err(|e| (e, Some(encoding)))?;
        let partial_success = rejected.into_trace_partial_success();
        Ok(encode(
            encoding,
            StatusCode::OK,
            &ExportTraceServiceResponse { partial_success },
        ))
    };
    outcome
        .await
        .unwrap_or_else(|(err, encoding)| error_response(&state, err, encoding))
}

async fn logs(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let outcome = async {
        let wire = read(&state, &headers, body).await?;
        let encoding = wire.encoding;
        let rejected = state
            .admission
            .logs_wire(wire)
            .await
            .map_err(|e| (e, Some(encoding)))?;
        let partial_success = rejected.into_logs_partial_success();
        Ok(encode(
            encoding,
            StatusCode::OK,
            &ExportLogsServiceResponse { partial_success },
        ))
    };
    outcome
        .await
        .unwrap_or_else(|(err, encoding)| error_response(&state, err, encoding))
}

type Refusal = (IngestError, Option<Encoding>);

/// Reads the body under the memory budget; decoding happens in admission.
async fn read(state: &HttpState, headers: &HeaderMap, body: Body) -> Result<WireRequest, Refusal> {
    let encoding = Encoding::from_headers(headers).map_err(|e| (e, None))?;
    let with_encoding = |e| (e, Some(encoding));
    let gzip = is_gzip(headers).map_err(with_encoding)?;
    let mut reservation = state.admission.reservation();
    let bytes = read_capped(
        body,
        state.admission.max_body_bytes(),
        &mut reservation,
        state.admission.queue_wait(),
    )
    .await
    .map_err(with_encoding)?;
    Ok(WireRequest {
        bytes,
        encoding,
        gzip,
        reservation,
    })
}

fn encode<T: prost::Message + Serialize>(
    encoding: Encoding,
    status: StatusCode,
    message: &T,
) -> Response {
    let body = match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        // Serialising generated OTLP types to JSON cannot fail (no maps with non-string keys).
        Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
    };
    (status, [(CONTENT_TYPE, encoding.content_type())], body).into_response()
}

/// The one place refusals become HTTP responses (and are counted).
fn error_response(state: &HttpState, err: IngestError, encoding: Option<Encoding>) -> Response {
    state.admission.count_refusal(&err);
    let (status, grpc_code) = match &err {
        IngestError::Malformed(_) => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        IngestError::TooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
        ),
        IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
        ),
        IngestError::OverLimit(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
        ),
        IngestError::QueueFull | IngestError::OverBudget | IngestError::ShuttingDown => {
            (StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable)
        }
    };
    // Unknown request encoding: answer in JSON, which a human debugging it can read.
    let encoding = encoding.unwrap_or(Encoding::Json);
    let mut response = encode(
        encoding,
        status,
        &RpcStatus {
            code: grpc_code as i32,
            message: err.to_string(),
        },
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(state.retry_after_secs));
    }
    response
}
