//! A stage that dies takes the process down in order: `/readyz` turns 503, receivers
//! answer retryable UNAVAILABLE / 503, and the process exits non-zero for its
//! supervisor to restart it.

mod otlp_support;

use std::time::{Duration, Instant};

use otlp_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pipeline_fails_readiness_refuses_input_and_exits_non_zero() {
    let data = tempfile::tempdir().unwrap();
    let mut serving =
        serve_on_free_ports_with_env(data.path(), &[], &[("EASTWEST_FAILPOINT", "pipeline")])
            .await
            .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/traces", serving.http);
    let export = || {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"{"resourceSpans":[]}"#)
            .send()
    };
    // An empty request is accepted without reaching the queue; a span reaches it.
    let span = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
            "name": "GET /", "kind": 3,
            "startTimeUnixNano": chrono::Utc::now().timestamp_nanos_opt().unwrap().to_string(),
            "endTimeUnixNano": chrono::Utc::now().timestamp_nanos_opt().unwrap().to_string()
        }]}]
    }]});
    assert!(export().await.unwrap().status().is_success());
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(span.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_not_ready = false;
    let mut saw_unavailable = false;
    while Instant::now() < deadline && !(saw_not_ready && saw_unavailable) {
        if let Ok(r) = reqwest::get(format!("http://{}/readyz", serving.api)).await {
            saw_not_ready |= r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE;
        }
        if saw_not_ready
            && let Ok(r) = client
                .post(&url)
                .header("content-type", "application/json")
                .body(span.to_string())
                .send()
                .await
            && r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
        {
            assert!(r.headers().contains_key("retry-after"));
            saw_unavailable = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_not_ready, "/readyz never answered 503");
    assert!(saw_unavailable, "the receiver never answered 503");

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serving.child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "exited with {status}");
}
