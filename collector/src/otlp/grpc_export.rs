//! The OTLP `Export` gRPC methods as tower services, in place of the generated servers.
//!
//! The only difference from the generated code is the codec: tonic hands a decoder the
//! whole message in one contiguous buffer, which this codec splits off as `Bytes` (no
//! copy) and passes on undecoded. The handler sizes the message against the memory
//! budget and reads it from the slice on the blocking pool (spans straight from the
//! wire, see `wire.rs`; logs with `prost`).

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use http_body_util::{BodyStream, StreamBody};
use parking_lot::Mutex;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{Body, BoxFuture, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

use super::budget::Reservation;
use super::ingest::IngestError;
use http_body::Frame;

/// What every export service shares: the receivers' memory budget and how refusals
/// are answered and counted.
pub(crate) trait Edge: Send + Sync + 'static {
    /// A reservation from the receivers' memory budget for one request's body.
    fn reservation(&self) -> Reservation;

    /// How long a request may wait for budget before it is refused as retryable.
    fn queue_wait(&self) -> Duration;

    /// The status for a request refused before its handler ran (counted here).
    fn refuse(&self, err: IngestError) -> Status;

    /// A refusal tonic made itself while decoding (neither the handler nor the budget
    /// refused the request): rewritten to the OTLP status and counted here.
    fn codec_refusal(&self, response: &mut http::Response<tonic::body::Body>);
}

/// One OTLP export service: its gRPC name, message types and handler.
pub(crate) trait Export: Send + Sync + 'static {
    /// Fully qualified service name, e.g. `opentelemetry.proto.collector.trace.v1.TraceService`.
    const NAME: &'static str;
    type Response: prost::Message + Send + 'static;
    type Edge: Edge;

    fn edge(&self) -> &Self::Edge;

    /// Handles one request's message bytes, still encoded, with the budget held for them
    /// while they arrived: decoding is the handler's (it sizes the message first).
    fn export(
        &self,
        request: Bytes,
        reservation: Reservation,
    ) -> impl std::future::Future<Output = Result<Self::Response, Status>> + Send + 'static;
}

/// Serves `/{E::NAME}/Export`, gzip in and out, with a decoded-size limit.
pub(crate) struct ExportServer<E> {
    export: Arc<E>,
    max_decoding_message_size: usize,
}

impl<E> ExportServer<E> {
    pub(crate) fn new(export: Arc<E>, max_decoding_message_size: usize) -> Self {
        Self {
            export,
            max_decoding_message_size,
        }
    }
}

impl<E> Clone for ExportServer<E> {
    fn clone(&self) -> Self {
        Self {
            export: self.export.clone(),
            max_decoding_message_size: self.max_decoding_message_size,
        }
    }
}

impl<E: Export> NamedService for ExportServer<E> {
    const NAME: &'static str = E::NAME;
}

/// What one request's parts share: the budget taken while its body arrived, and
/// whether the handler or the budget refused it (their refusals are counted where they
/// are made; any other error status is tonic's own).
#[derive(Default)]
struct RequestState {
    reservation: Mutex<Option<Reservation>>,
    refused: AtomicBool,
}

struct ExportMethod<E> {
    export: Arc<E>,
    state: Arc<RequestState>,
}

impl<E: Export> UnaryService<Bytes> for ExportMethod<E> {
    type Response = E::Response;
    type Future = BoxFuture<Response<E::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let reservation = self
            .state
            .reservation
            .lock()
            .take()
            .unwrap_or_else(|| self.export.edge().reservation());
        let export = self.export.export(request.into_inner(), reservation);
        let state = self.state.clone();
        Box::pin(async move {
            export
                .await
                .inspect_err(|_| state.refused.store(true, Ordering::Relaxed))
                .map(Response::new)
        })
    }
}

/// The request body, reserving budget for each frame as it arrives: bytes a client
/// sends count against the budget before the message is whole, not only once decoded,
/// on top of `inflate_room` already reserved for tonic's inflated copy of a compressed
/// message. A frame the budget has no room for ends the request as retryable.
fn budgeted<B, E>(
    body: B,
    inflate_room: u64,
    state: Arc<RequestState>,
    export: Arc<E>,
) -> StreamBody<impl Stream<Item = Result<Frame<B::Data>, StdError>> + Send + 'static>
where
    E: Export,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError> + Send + 'static,
{
    let mut seen = 0u64;
    StreamBody::new(BodyStream::new(body).map(move |frame| {
        let frame = frame.map_err(Into::into)?;
        if let Some(data) = frame.data_ref() {
            seen += data.remaining() as u64;
            let grown = state
                .reservation
                .lock()
                .as_mut()
                .map_or(Ok(()), |r| r.try_grow_to(inflate_room + seen));
            if let Err(err) = grown {
                state.refused.store(true, Ordering::Relaxed);
                return Err(Box::new(export.edge().refuse(err)) as StdError);
            }
        }
        Ok(frame)
    }))
}

/// Whether the message is compressed (`grpc-encoding` other than `identity`).
fn is_compressed(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_some_and(|encoding| encoding != "identity")
}

fn is_export_path<E: Export>(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(E::NAME))
        .is_some_and(|p| p == "/Export")
}

impl<E, B> tower::Service<http::Request<B>> for ExportServer<E>
where
    E: Export,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !is_export_path::<E>(request.uri().path()) {
            return Box::pin(async { Ok(Status::new(Code::Unimplemented, "").into_http()) });
        }
        let max_decoding = self.max_decoding_message_size;
        // tonic inflates a compressed message into a buffer of its own, up to the
        // decoded-size limit, before the handler sees it: that room is reserved before
        // the body is read, as the HTTP receiver reserves it before inflating.
        let inflate_room = if is_compressed(request.headers()) {
            max_decoding as u64
        } else {
            0
        };
        let mut upfront = self.export.edge().reservation();
        let state = Arc::new(RequestState::default());
        let method = ExportMethod {
            export: self.export.clone(),
            state: state.clone(),
        };
        let export = self.export.clone();
        let request =
            request.map(|body| budgeted(body, inflate_room, state.clone(), self.export.clone()));
        Box::pin(async move {
            let edge = export.edge();
            if let Err(err) = upfront.grow_to(inflate_room, edge.queue_wait()).await {
                return Ok(edge.refuse(err).into_http());
            }
            *state.reservation.lock() = Some(upfront);
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(SliceCodec::<E::Response>::default())
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max_decoding), None);
            let mut response = grpc.unary(method, request).await;
            if !state.refused.load(Ordering::Relaxed) {
                edge.codec_refusal(&mut response);
            }
            Ok(response)
        })
    }
}

/// Encodes `Out` with prost; hands the request message on as the contiguous bytes it
/// arrived in, undecoded.
struct SliceCodec<Out>(PhantomData<fn(Out)>);

impl<Out> Default for SliceCodec<Out> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Out> Codec for SliceCodec<Out>
where
    Out: prost::Message + Send + 'static,
{
    type Encode = Out;
    type Decode = Bytes;
    type Encoder = SliceCodec<Out>;
    type Decoder = SliceCodec<Out>;

    fn encoder(&mut self) -> Self::Encoder {
        Self::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Self::default()
    }
}

impl<Out: prost::Message> Encoder for SliceCodec<Out> {
    type Item = Out;
    type Error = Status;

    fn encode(&mut self, item: Out, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl<Out> Decoder for SliceCodec<Out> {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
