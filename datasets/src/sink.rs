//! A minimal OTLP gRPC trace receiver that only counts spans: the local target for the
//! replay benchmark and tests (a real tonic server, not a mock of the client).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::error::DatasetError;

struct Counter(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts a counting receiver on 127.0.0.1 (ephemeral port); returns its address and the
/// span counter. It runs until the runtime stops.
pub async fn spawn_counting_receiver() -> Result<(SocketAddr, Arc<AtomicU64>), DatasetError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DatasetError::io(std::path::Path::new("127.0.0.1:0"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DatasetError::io(std::path::Path::new("127.0.0.1:0"), e))?;
    let count = Arc::new(AtomicU64::new(0));
    let service =
        TraceServiceServer::new(Counter(count.clone())).max_decoding_message_size(64 << 20);
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    Ok((addr, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileFormat, GenOptions, Pace, ReplayOptions, generate, replay};

    #[tokio::test]
    async fn replay_delivers_every_span_over_grpc_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenOptions {
            learning: std::time::Duration::from_secs(600),
            attack: std::time::Duration::from_secs(120),
            format: FileFormat::Pb,
            ..Default::default()
        };
        let summary = generate("admin-endpoint", &opts, dir.path()).unwrap();
        let (addr, count) = spawn_counting_receiver().await.unwrap();
        let ro = ReplayOptions {
            endpoint: format!("http://{addr}"),
            pace: Pace::Unlimited,
            progress: false,
            ..Default::default()
        };
        let report = replay(&[dir.path().join("traces.pb")], ro.clone())
            .await
            .unwrap();
        assert_eq!(report.spans, summary.meta.spans);
        assert_eq!(count.load(Ordering::Relaxed), summary.meta.spans);
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json\n").unwrap();
        let err = replay(&[bad], ro).await.unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
