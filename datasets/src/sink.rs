//! A minimal OTLP gRPC receiver that only counts spans and log records: the local target
//! for the replay benchmark and tests (a real tonic server, not a mock of the client).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::error::DatasetError;
use eastwest_collector::otlp::{log_record_count, span_count};

struct Counter(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0
            .fetch_add(span_count(request.get_ref()), Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0
            .fetch_add(log_record_count(request.get_ref()), Ordering::Relaxed);
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// What the counting receiver received.
#[derive(Debug, Clone, Default)]
pub struct ReceivedCounts {
    pub spans: Arc<AtomicU64>,
    pub log_records: Arc<AtomicU64>,
}

/// Starts a counting receiver on 127.0.0.1 (ephemeral port); returns its address and the
/// counters. It runs until the runtime stops.
pub async fn spawn_counting_receiver() -> Result<(SocketAddr, ReceivedCounts), DatasetError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DatasetError::io(std::path::Path::new("127.0.0.1:0"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DatasetError::io(std::path::Path::new("127.0.0.1:0"), e))?;
    let counts = ReceivedCounts::default();
    let traces =
        TraceServiceServer::new(Counter(counts.spans.clone())).max_decoding_message_size(64 << 20);
    let logs = LogsServiceServer::new(Counter(counts.log_records.clone()))
        .max_decoding_message_size(64 << 20);
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(traces)
            .add_service(logs)
            .serve_with_incoming(incoming)
            .await;
    });
    Ok((addr, counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AccessLogFormat, FileFormat, GenOptions, Pace, ReplayOptions, generate, read_otlp_file,
        replay,
    };
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

    #[tokio::test]
    async fn replay_delivers_every_span_and_log_record_over_grpc_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenOptions {
            learning: std::time::Duration::from_secs(600),
            attack: std::time::Duration::from_secs(120),
            format: FileFormat::Pb,
            access_logs: Some(AccessLogFormat::OtlpLogs),
            ..Default::default()
        };
        let summary = generate("admin-endpoint", &opts, dir.path()).unwrap();
        let logs_file = dir.path().join("logs.pb");
        let records: u64 = read_otlp_file::<ExportLogsServiceRequest>(&logs_file)
            .unwrap()
            .iter()
            .map(log_record_count)
            .sum();
        assert!(records > 0, "the scenario has access logs");
        let (addr, counts) = spawn_counting_receiver().await.unwrap();
        let ro = ReplayOptions {
            endpoint: format!("http://{addr}"),
            pace: Pace::Unlimited,
            progress: false,
            ..Default::default()
        };
        let report = replay(&[dir.path().join("traces.pb"), logs_file], ro.clone())
            .await
            .unwrap();
        assert_eq!(report.spans, summary.meta.spans);
        assert_eq!(report.log_records, records);
        assert_eq!(counts.spans.load(Ordering::Relaxed), summary.meta.spans);
        assert_eq!(counts.log_records.load(Ordering::Relaxed), records);
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json\n").unwrap();
        let err = replay(&[bad], ro).await.unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
