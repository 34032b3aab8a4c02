//! Against a real local OTLP/HTTP endpoint (axum) that records what it receives.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use parking_lot::Mutex;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use super::*;
use crate::accesslog::{MAX_LINE_BYTES, calls_from_otlp_logs};

#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    /// Scripted answers, used front to back; empty → 200.
    script: Arc<Mutex<VecDeque<StatusCode>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn records(&self) -> usize {
        self.received
            .lock()
            .iter()
            .map(|r| {
                r.resource_logs
                    .iter()
                    .flat_map(|rl| &rl.scope_logs)
                    .map(|sl| sl.log_records.len())
                    .sum::<usize>()
            })
            .sum()
    }

    fn bodies(&self) -> Vec<String> {
        let received = self.received.lock();
        let records = received
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records);
        records
            .filter_map(|r| match r.body.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }
}

async fn logs(State(rec): State<Recorder>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    rec.content_types.lock().push(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    );
    let scripted = rec.script.lock().pop_front();
    match scripted {
        Some(status) if status != StatusCode::OK => {
            let mut h = HeaderMap::new();
            h.insert(header::RETRY_AFTER, "1".parse().unwrap());
            (status, h, Vec::new())
        }
        _ => {
            let request = ExportLogsServiceRequest::decode(body.as_ref())
                .expect("client sends valid protobuf");
            rec.received.lock().push(request);
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                "application/x-protobuf".parse().unwrap(),
            );
            (
                StatusCode::OK,
                h,
                ExportLogsServiceResponse::default().encode_to_vec(),
            )
        }
    }
}

async fn server() -> (String, Recorder) {
    let rec = Recorder::default();
    let app = Router::new()
        .route("/v1/logs", post(logs))
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rec)
}

const TEXT: &str = include_str!("../../tests/fixtures/accesslog/istio_text.log");
const JSON: &str = include_str!("../../tests/fixtures/accesslog/istio_json.log");

fn options(endpoint: &str, files: Vec<PathBuf>) -> IngestLogsOptions {
    IngestLogsOptions {
        files,
        endpoint: endpoint.into(),
        service: Some("sleep".into()),
        namespace: Some("foo".into()),
        batch_lines: 3,
        poll_interval: Duration::from_millis(20),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_every_access_log_line_as_an_otlp_record_and_skips_the_rest() {
    let (endpoint, rec) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.log");
    let mixed = dir.path().join("mixed.log");
    std::fs::write(&text, TEXT).unwrap();
    // JSON lines, an Envoy debug line, CRLF endings and no final newline.
    let mixed_content = format!(
        "{}\r\n2024-05-01T10:00:00Z info envoy main starting\r\n\n{}",
        JSON.lines().next().unwrap(),
        JSON.lines().nth(1).unwrap()
    );
    std::fs::write(&mixed, mixed_content).unwrap();

    let report = ingest_log_files(
        options(&endpoint, vec![text, mixed]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let text_records = TEXT.lines().filter(|l| !l.starts_with('#')).count() as u64;
    assert_eq!(report.records_sent, text_records + 2);
    assert_eq!(report.json_lines, 2);
    assert_eq!(report.text_lines, text_records + 1);
    assert_eq!(report.lines_unparsed, 1, "the envoy debug line");
    assert_eq!(
        report.lines_skipped,
        TEXT.lines().filter(|l| l.starts_with('#')).count() as u64 + 1
    );
    assert_eq!(report.retries, 0);
    assert_eq!(rec.records() as u64, report.records_sent);
    assert_eq!(report.batches_sent, rec.received.lock().len() as u64);
    assert!(
        rec.content_types
            .lock()
            .iter()
            .all(|c| c == "application/x-protobuf")
    );
    assert!(
        rec.bodies().iter().all(|b| !b.ends_with('\r')),
        "CR stripped"
    );

    // What the server receives parses into calls from the named reporter.
    let calls: Vec<_> = rec
        .received
        .lock()
        .iter()
        .flat_map(calls_from_otlp_logs)
        .collect();
    assert_eq!(calls.len() as u64, report.records_sent);
    let httpbin = calls
        .iter()
        .find(|c| c.destination.service == "httpbin")
        .unwrap();
    assert_eq!(httpbin.source.key(), "sleep.foo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_503_and_429_and_fails_on_400() {
    let (endpoint, rec) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.log");
    std::fs::write(&file, JSON).unwrap();
    rec.script.lock().extend([
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ]);
    let started = std::time::Instant::now();
    let report = ingest_log_files(
        options(&endpoint, vec![file.clone()]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.retries, report.records_sent, report.batches_sent),
        (2, 3, 1)
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 honoured twice"
    );
    assert_eq!(rec.records(), 3, "delivered once");

    rec.script.lock().push_back(StatusCode::BAD_REQUEST);
    let err = ingest_log_files(
        options(&endpoint, vec![file.clone()]),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");

    let opts = IngestLogsOptions {
        max_retries: 1,
        ..options(&endpoint, vec![file])
    };
    rec.script.lock().extend([
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::SERVICE_UNAVAILABLE,
    ]);
    let err = ingest_log_files(opts, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("gave up after 2 attempts"),
        "{err}"
    );
}

async fn wait_for(rec: &Recorder, records: usize) {
    for _ in 0..750 {
        if rec.records() >= records {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server has {} records, expected {records}", rec.records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_tails_growth_truncation_and_rotation_until_cancelled() {
    use std::io::Write;
    let (endpoint, rec) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let lines: Vec<&str> = JSON.lines().collect();
    std::fs::write(&path, format!("{}\n", lines[0])).unwrap();
    let cancel = CancellationToken::new();
    let opts = IngestLogsOptions {
        follow: true,
        ..options(&endpoint, vec![path.clone()])
    };
    let task = tokio::spawn(ingest_log_files(opts, cancel.clone()));
    wait_for(&rec, 1).await;

    // Growth, with a line written in two parts.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    write!(f, "{}", &lines[1][..20]).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    writeln!(f, "{}", &lines[1][20..]).unwrap();
    wait_for(&rec, 2).await;

    // Truncation: the file starts over, shorter than before.
    std::fs::write(&path, format!("{}\n", lines[2])).unwrap();
    wait_for(&rec, 3).await;

    // Rotation: renamed away, a new file at the path; a last line lands in the old one first.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    writeln!(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&rotated)
            .unwrap(),
        "{}",
        lines[0]
    )
    .unwrap();
    std::fs::write(&path, format!("{}\n{}", lines[1], lines[2])).unwrap();
    wait_for(&rec, 5).await;

    cancel.cancel();
    let report = task.await.unwrap().unwrap();
    assert_eq!(report.truncations, 1);
    assert_eq!(report.rotations, 1);
    assert_eq!(
        report.records_sent, 6,
        "the unterminated last line is sent on cancel"
    );
    assert_eq!(rec.records(), 6);
    let bodies = rec.bodies();
    assert_eq!(bodies[1], lines[1], "the split line arrives whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_lines_are_dropped_and_bad_options_refused() {
    let (endpoint, rec) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.log");
    let long = format!("{{\"path\":\"/{}\"}}", "a".repeat(MAX_LINE_BYTES * 2));
    std::fs::write(&file, format!("{long}\n{}\n", JSON.lines().next().unwrap())).unwrap();
    let report = ingest_log_files(
        options(&endpoint, vec![file.clone()]),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.lines_too_long,
            report.records_sent,
            report.lines_read
        ),
        (1, 1, 2)
    );
    assert_eq!(rec.records(), 1);

    let missing = ingest_log_files(
        options(&endpoint, vec![dir.path().join("nope.log")]),
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(missing, Err(CollectorError::Read { .. })));
    assert!(options("ftp://x", vec![file.clone()]).validate().is_err());
    assert!(options(&endpoint, vec![]).validate().is_err());
    assert!(
        IngestLogsOptions {
            batch_lines: 0,
            ..options(&endpoint, vec![file])
        }
        .validate()
        .is_err()
    );
    assert_eq!(
        options("http://h:4318/", vec![]).logs_url(),
        "http://h:4318/v1/logs"
    );
    assert_eq!(
        options("http://h:4318/v1/logs", vec![]).logs_url(),
        "http://h:4318/v1/logs"
    );
}
