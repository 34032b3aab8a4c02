//! Timestamps are attacker-controlled. Spans stamped in the far future, in 1970 or at
//! `u64::MAX` — alone or mixed into normal requests — are refused one by one and counted;
//! nothing learned is lost, the learning period keeps its length, today's history
//! survives, and a new edge afterwards still alerts.

mod otlp_support;

use std::time::{Duration, Instant};

use eastwest_datasets::kv;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_support::*;
use serde_json::Value;

const SEC: u64 = 1_000_000_000;

fn resource(service: &str, span: Span) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("k8s.namespace.name", "shop"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `from` CLIENT → `to` SERVER in trace `n`, starting at `start`.
fn pair(n: u64, from: &str, to: &str, start: u64) -> Vec<ResourceSpans> {
    let mut trace_id = vec![0u8; 16];
    trace_id[8..].copy_from_slice(&(n + 1).to_be_bytes());
    let span = |id: u8, parent: Option<u8>, kind: i32, attrs: Vec<KeyValue>| Span {
        trace_id: trace_id.clone(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: "GET /items".into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(SEC / 100),
        attributes: attrs,
        ..Default::default()
    };
    vec![
        resource(
            from,
            span(
                1,
                None,
                3,
                vec![kv("http.request.method", "GET"), kv("server.address", to)],
            ),
        ),
        resource(
            to,
            span(
                2,
                Some(1),
                2,
                vec![kv("http.request.method", "GET"), kv("http.route", "/items")],
            ),
        ),
    ]
}

async fn send(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    resource_spans: Vec<ResourceSpans>,
) -> i64 {
    let resp = client
        .export(ExportTraceServiceRequest { resource_spans })
        .await
        .unwrap()
        .into_inner();
    resp.partial_success.map_or(0, |p| p.rejected_spans)
}

async fn baseline(api: std::net::SocketAddr) -> Value {
    get_json(&format!("http://{api}/api/v1/baseline"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_timestamps_are_refused_and_blind_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut serving = serve_on_free_ports(data.path(), &["--learning-period", "10m"])
        .await
        .unwrap();
    let mut client = TraceServiceClient::connect(format!("http://{}", serving.grpc))
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let t0 = now - 40 * 60 * SEC;
    let mut n = 0;
    let mut normal = |from: u64, to: u64| {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            out.extend(pair(n, "cart", "users", t));
            n += 1;
            t += 2 * SEC;
        }
        out
    };
    for chunk in normal(t0, t0 + 300 * SEC).chunks(60) {
        assert_eq!(send(&mut client, chunk.to_vec()).await, 0);
    }

    let far_future = now + 365 * 24 * 3600 * SEC;
    let hostile = [far_future, 1, u64::MAX];
    let mut rejected = 0;
    for (i, t) in hostile.iter().enumerate() {
        // Alone: a forged edge that would also end learning or age the baseline out.
        rejected += send(&mut client, pair(10_000 + i as u64, "cart", "payments", *t)).await;
    }
    // Mixed into a normal request.
    let mut mixed = normal(t0 + 300 * SEC, t0 + 320 * SEC);
    for (i, t) in hostile.iter().enumerate() {
        mixed.extend(pair(20_000 + i as u64, "cart", "payments", *t));
    }
    rejected += send(&mut client, mixed).await;
    assert_eq!(rejected, 12, "every forged span refused one by one");

    let stats = get_json(&format!("http://{}/api/v1/stats", serving.api))
        .await
        .unwrap();
    assert_eq!(stats["out_of_window"], 12, "{stats}");
    // The API's view is published a few times a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = baseline(serving.api).await;
        if status["learning_started"].is_string() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "learning never started: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let started = status["learning_started"].as_str().unwrap().to_string();
    let ends = status["learning_ends"].as_str().unwrap().to_string();
    let span = chrono::DateTime::parse_from_rfc3339(&ends).unwrap()
        - chrono::DateTime::parse_from_rfc3339(&started).unwrap();
    assert_eq!(span.num_seconds(), 600, "{status}");

    // Learning runs its course, then a new edge alerts.
    for chunk in normal(t0 + 320 * SEC, t0 + 900 * SEC).chunks(60) {
        assert_eq!(send(&mut client, chunk.to_vec()).await, 0);
    }
    let mut attack = pair(30_000, "cart", "ledger", t0 + 905 * SEC);
    attack.extend(normal(t0 + 900 * SEC, t0 + 960 * SEC));
    assert_eq!(send(&mut client, attack).await, 0);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = get_json(&format!(
            "http://{}/api/v1/alerts?kind=new_edge",
            serving.api
        ))
        .await
        .unwrap();
        let found =
            alerts["alerts"].as_array().unwrap().iter().any(|a| {
                a["source"]["service"] == "cart" && a["destination"]["service"] == "ledger"
            });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new_edge cart → ledger: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = baseline(serving.api).await;
        if status["state"] == "detecting" {
            break status;
        }
        assert!(Instant::now() < deadline, "learning never ended: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status["learning_ends"].as_str(),
        Some(ends.as_str()),
        "{status}"
    );
    assert!(status["counts"]["edges"].as_u64().unwrap() >= 1, "{status}");
    let alerts = get_json(&format!("http://{}/api/v1/alerts", serving.api))
        .await
        .unwrap();
    assert!(
        !alerts.to_string().contains("payments"),
        "no forged call reached detection: {alerts}"
    );

    stop_gracefully(&mut serving.child).unwrap();
    let out = std::process::Command::new(eastwest_bin())
        .args(["sql", "--data-dir"])
        .arg(data.path())
        .arg("SELECT count(*) AS n FROM calls WHERE destination_service = 'users'")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: u64 = text
        .lines()
        .filter_map(|l| l.trim().trim_matches('|').trim().parse().ok())
        .next()
        .unwrap();
    assert!(rows >= 450, "today's history survives: {rows} rows");
}
