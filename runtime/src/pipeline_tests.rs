//! The event-time loop on tokio's paused clock: idle advance is a function of tokio time,
//! so these run in no wall time and cannot flake on a slow machine.

use std::sync::Arc;
use std::time::Duration;

use eastwest_collector::{IngestBatch, Queued, wall_clock_ns};
use eastwest_datasets::kv;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parking_lot::Mutex;

use crate::config::EastwestConfig;
use crate::core::{Assembled, Core};
use crate::storage::StorageConfig;

/// `web` calls `db` (a client span only: the peer is virtual), starting at `start_ns`.
fn client_span(start_ns: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "web")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![9; 16],
                    span_id: vec![9; 8],
                    name: "SELECT".into(),
                    kind: 3,
                    start_time_unix_nano: start_ns,
                    end_time_unix_nano: start_ns + 5_000_000,
                    attributes: vec![kv("peer.service", "db")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(start_paused = true)]
async fn idle_advance_releases_the_last_call_after_its_waits_on_tokio_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = EastwestConfig {
        data_dir: dir.path().into(),
        storage: StorageConfig {
            history: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let tap = Arc::new(Mutex::new(Vec::new()));
    let Assembled {
        parts,
        pipeline,
        queue,
        commands,
    } = Core::assemble(&config, Some(tap.clone())).unwrap();
    let run = tokio::spawn(pipeline.run(queue, commands));
    // A minute old, so the wall clock never caps the idle advance.
    let start = (wall_clock_ns() - 60_000_000_000) as u64;
    let batch = IngestBatch::Traces(client_span(start));
    parts.tx.send(Queued::unbudgeted(batch)).await.unwrap();

    // The watermark trails the newest event by the lateness, and the side waits for its
    // peer until its end plus the TTL: without more input only idle advance releases it,
    // and only once input has been idle for `idle_advance`.
    let waits = config.pipeline.allowed_lateness + config.normalizer.pairing_ttl;
    tokio::time::sleep(config.pipeline.idle_advance).await;
    assert!(tap.lock().is_empty(), "released before the input went idle");
    tokio::time::sleep(waits + Duration::from_secs(1)).await;
    let released = tap.lock().clone();
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].source.service, "web");

    drop(parts);
    run.await.unwrap();
}
