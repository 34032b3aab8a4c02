//! Every endpoint of the API against a real server, including bad input and auth.

mod common;

use std::time::Duration;

use common::{Server, alert, incident, read_sse};
use eastwest_api::ApiConfig;
use eastwest_model::{AlertKind, Severity};
use serde_json::Value;

async fn seeded(dir: &std::path::Path, config: ApiConfig) -> Server {
    let server = Server::start(dir, config, vec![]).await;
    server
        .publish(
            vec![
                alert("a1", AlertKind::NewEdge, Severity::Low, 10),
                alert("a2", AlertKind::SensitiveEndpoint, Severity::High, 20),
                alert("a3", AlertKind::Probing, Severity::Critical, 30),
            ],
            vec![incident("inc-1", &["a1", "a2", "a3"])],
        )
        .await;
    server
}

fn ids(v: &Value) -> Vec<String> {
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn alerts_list_filters_and_paginates() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), ApiConfig::default()).await;

    let (code, all) = s.get_json("/api/v1/alerts").await;
    assert_eq!(code, 200);
    assert_eq!(ids(&all), ["a3", "a2", "a1"], "newest first");
    assert_eq!(
        all["alerts"][0]["source"]["principal"],
        "spiffe://cluster.local/ns/shop/sa/cart"
    );

    let (_, high) = s.get_json("/api/v1/alerts?severity=high").await;
    assert_eq!(ids(&high), ["a3", "a2"], "severity means at least");
    let (_, kinds) = s.get_json("/api/v1/alerts?kind=new_edge,probing").await;
    assert_eq!(ids(&kinds), ["a3", "a1"]);
    let (_, since) = s
        .get_json("/api/v1/alerts?since=2023-11-14T22:13:40Z")
        .await;
    assert_eq!(ids(&since), ["a3", "a2"]);

    let (_, page1) = s.get_json("/api/v1/alerts?limit=2").await;
    assert_eq!(ids(&page1), ["a3", "a2"]);
    let next = page1["next"].as_str().unwrap().to_string();
    let (_, page2) = s
        .get_json(&format!("/api/v1/alerts?limit=2&before={next}"))
        .await;
    assert_eq!(ids(&page2), ["a1"]);
    assert!(page2["next"].is_null());

    for (query, needle) in [
        ("severity=urgent", "unknown severity"),
        ("kind=bogus", "unknown kind"),
        ("since=yesterday", "RFC 3339"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("state=closed", "unknown state"),
        ("before=nonsense", "invalid cursor"),
        ("sevrity=high", "unknown query parameter"),
    ] {
        let (code, body) = s.get_json(&format!("/api/v1/alerts?{query}")).await;
        assert_eq!(code, 400, "{query}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    s.stop().await;
}

#[tokio::test]
async fn single_alert_ack_accept_and_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), ApiConfig::default()).await;

    let (code, one) = s.get_json("/api/v1/alerts/a2").await;
    assert_eq!(code, 200);
    assert_eq!(one["kind"], "sensitive_endpoint");
    assert_eq!(one["state"], "open");
    let (code, missing) = s.get_json("/api/v1/alerts/nope").await;
    assert_eq!(code, 404);
    assert!(missing["error"].as_str().unwrap().contains("nope"));

    let acked: Value = s
        .client
        .post(s.url("/api/v1/alerts/a2/ack"))
        .json(&serde_json::json!({"by": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked["state"], "acked");
    let r = s
        .client
        .post(s.url("/api/v1/alerts/a2/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "accepted");
    assert_eq!(
        *s.backend.accepted.lock(),
        vec!["a2".to_string()],
        "accept teaches the backend"
    );
    let r = s
        .client
        .post(s.url("/api/v1/alerts/a2/ack"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "an accepted alert cannot be merely acked");
    let r = s
        .client
        .post(s.url("/api/v1/alerts/zzz/accept"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .client
        .post(s.url("/api/v1/alerts/a1/ack"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let (_, history) = s.get_json("/api/v1/alerts/a2").await;
    let history = history["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["state"], "acked");
    assert_eq!(history[0]["by"], "alice");
    assert_eq!(history[1]["state"], "accepted");

    // A re-emitted alert keeps the operator's state and its earliest first_seen.
    let mut again = alert("a2", AlertKind::SensitiveEndpoint, Severity::High, 40);
    again.count = 5;
    again.first_seen = common::at(39);
    s.publish(vec![again], vec![]).await;
    let (_, a2) = s.get_json("/api/v1/alerts/a2").await;
    assert_eq!(a2["state"], "accepted");
    assert_eq!(a2["count"], 5);
    assert_eq!(a2["first_seen"], "2023-11-14T22:13:30Z");
    let (_, accepted) = s.get_json("/api/v1/alerts?state=accepted").await;
    assert_eq!(ids(&accepted), ["a2"]);

    let (code, incidents) = s.get_json("/api/v1/incidents?limit=5").await;
    assert_eq!(code, 200);
    assert_eq!(incidents["incidents"][0]["id"], "inc-1");
    let (code, inc) = s.get_json("/api/v1/incidents/inc-1").await;
    assert_eq!(code, 200);
    assert_eq!(inc["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(s.get_json("/api/v1/incidents/none").await.0, 404);
    assert_eq!(s.get_json("/api/v1/incidents?limit=-1").await.0, 400);
    s.stop().await;
}

#[tokio::test]
async fn graph_edge_service_baseline_stats_health() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), ApiConfig::default()).await;

    let (code, graph) = s.get_json("/api/v1/graph").await;
    assert_eq!(code, 200);
    let status = |src: &str| {
        graph["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["source"] == src)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        status("cart.shop"),
        "alerted",
        "store alerts overlay the edge"
    );
    assert_eq!(status("frontend.shop"), "baseline");
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 5);

    let (code, e) = s
        .get_json("/api/v1/graph/edge?source=cart.shop&destination=users.shop")
        .await;
    assert_eq!(code, 200);
    assert_eq!(e["status"], "alerted");
    assert_eq!(e["endpoints"][0]["route"], "/cart/{id}");
    assert_eq!(e["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(
        s.get_json("/api/v1/graph/edge?source=cart.shop&destination=nope")
            .await
            .0,
        404
    );
    let (code, body) = s.get_json("/api/v1/graph/edge?source=cart.shop").await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("required"));

    let (code, svc) = s.get_json("/api/v1/graph/service/cart.shop").await;
    assert_eq!(code, 200);
    assert_eq!(
        svc["blast_radius"],
        serde_json::json!(["db.shop", "users.shop"])
    );
    assert_eq!(svc["callers"][0]["source"], "frontend.shop");
    assert_eq!(svc["calls"][0]["destination"], "users.shop");
    assert_eq!(s.get_json("/api/v1/graph/service/ghost.shop").await.0, 404);

    let (_, b) = s.get_json("/api/v1/baseline").await;
    assert_eq!(b["state"], "learning");
    let r: Value = s
        .client
        .post(s.url("/api/v1/baseline/detect"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "detecting");
    assert_eq!(s.get_json("/api/v1/baseline").await.1["state"], "detecting");

    let (code, stats) = s.get_json("/api/v1/stats").await;
    assert_eq!(code, 200);
    assert_eq!(stats["spans"], 10);

    assert_eq!(
        s.get_json("/healthz").await,
        (200, serde_json::json!({"status": "ok"}))
    );
    assert_eq!(s.get_json("/readyz").await.0, 200);
    *s.backend.ready.lock() = false;
    assert_eq!(s.get_json("/readyz").await.0, 503);

    let (code, body) = s.get_json("/api/v1/nothing-here").await;
    assert_eq!(code, 404);
    assert!(body["error"].is_string());
    let r = s.client.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200, "dashboard is served at /");
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS by default"
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), ApiConfig::default()).await;
    s.get_json("/api/v1/alerts").await;
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("metrics parse");
    let find = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        find(
            "traces_service_graph_request_total",
            &[("client", "frontend.shop"), ("server", "cart.shop")]
        ),
        Some(120.0)
    );
    assert_eq!(
        find(
            "traces_service_graph_request_failed_total",
            &[("client", "frontend.shop"), ("server", "cart.shop")]
        ),
        Some(12.0)
    );
    assert_eq!(
        find(
            "eastwest_alerts_total",
            &[("kind", "probing"), ("severity", "critical")]
        ),
        Some(1.0)
    );
    assert_eq!(
        find("eastwest_spans_total", &[]),
        Some(10.0),
        "backend metrics included"
    );
    assert_eq!(
        find(
            "eastwest_http_requests_total",
            &[("route", "/api/v1/alerts"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(find("eastwest_webhook_dead_letters", &[]), Some(0.0));
    // The hostile service name is escaped, so it still parses as one series.
    assert!(text.contains(r#"client="weird\"svc\\x.shop""#), "{text}");
    assert!(scrape.samples.iter().any(|s| {
        s.metric == "traces_service_graph_request_total"
            && s.labels.get("server") == Some("db.shop")
            && s.labels
                .get("client")
                .is_some_and(|c| c.starts_with("weird"))
    }));
    s.stop().await;
}

#[tokio::test]
async fn token_is_required_on_api_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApiConfig {
        api_token: Some("s3cret-token".into()),
        ..Default::default()
    };
    let s = seeded(dir.path(), config).await;
    for path in [
        "/api/v1/alerts",
        "/api/v1/graph",
        "/api/v1/openapi.json",
        "/api/v1/alerts/stream",
        "/api/v1/unknown",
    ] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without token");
        assert!(r.headers().get("www-authenticate").is_some());
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
        let r = s
            .client
            .get(s.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with wrong token");
    }
    let r = s
        .client
        .get(s.url("/api/v1/alerts"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .post(s.url("/api/v1/alerts/a1/ack"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The query-string token works for the SSE stream (EventSource) and nowhere else.
    let r = s
        .client
        .get(s.url("/api/v1/alerts?access_token=s3cret-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut r = s
        .client
        .get(s.url("/api/v1/alerts/stream?access_token=s3cret-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hello = read_sse(&mut r, &["hello"], 1, Duration::from_secs(5)).await;
    assert_eq!(hello.len(), 1);
    drop(r);
    for path in ["/healthz", "/readyz", "/"] {
        assert_eq!(
            s.client.get(s.url(path)).send().await.unwrap().status(),
            200,
            "{path} stays open"
        );
    }
    // /metrics lists every learned edge: it needs the token (header only) unless
    // `metrics_public` opens it.
    let metrics = |token: Option<&str>| {
        let mut request = s.client.get(s.url("/metrics?access_token=s3cret-token"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    assert_eq!(metrics(None).await.unwrap().status(), 401);
    assert_eq!(metrics(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(metrics(Some("s3cret-token")).await.unwrap().status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApiConfig {
        max_body_bytes: 1024,
        ..Default::default()
    };
    let s = seeded(dir.path(), config).await;
    let big = format!("{{\"by\":\"{}\"}}", "x".repeat(4096));
    let r = s
        .client
        .post(s.url("/api/v1/alerts/a1/ack"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    s.stop().await;
}

#[tokio::test]
async fn non_loopback_listener_without_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = eastwest_api::AlertStore::open(dir.path()).unwrap();
    let state = eastwest_api::ApiState::new(
        ApiConfig::default(),
        store,
        std::sync::Arc::new(common::TestBackend::default()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = eastwest_api::serve(listener, state, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("non-loopback"), "{err}");
}

#[tokio::test]
async fn sse_streams_new_and_updated_alerts_and_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ApiConfig::default(), vec![]).await;
    let mut stream = s
        .client
        .get(s.url("/api/v1/alerts/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert_eq!(
        read_sse(&mut stream, &["hello"], 1, Duration::from_secs(5))
            .await
            .len(),
        1
    );

    s.publish(
        vec![alert("s1", AlertKind::Probing, Severity::High, 5)],
        vec![incident("inc-9", &["s1"])],
    )
    .await;
    let mut updated = alert("s1", AlertKind::Probing, Severity::High, 9);
    updated.count = 2;
    s.publish(vec![updated], vec![]).await;
    s.client
        .post(s.url("/api/v1/alerts/s1/ack"))
        .send()
        .await
        .unwrap();

    let events = read_sse(
        &mut stream,
        &["alert", "incident"],
        4,
        Duration::from_secs(10),
    )
    .await;
    let alerts: Vec<Value> = events
        .iter()
        .filter(|(n, _)| n == "alert")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(alerts.len(), 3, "{events:?}");
    assert_eq!(alerts[0]["count"], 1);
    assert_eq!(alerts[1]["count"], 2);
    assert_eq!(alerts[2]["state"], "acked");
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "incident" && d.contains("inc-9"))
    );
    drop(stream);
    s.stop().await;
}

#[tokio::test]
async fn lagging_sse_client_is_told_to_resync() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApiConfig {
        sse_buffer: 4,
        ..Default::default()
    };
    let s = Server::start(dir.path(), config, vec![]).await;
    let mut stream = s
        .client
        .get(s.url("/api/v1/alerts/stream"))
        .send()
        .await
        .unwrap();
    read_sse(&mut stream, &["hello"], 1, Duration::from_secs(5)).await;
    // Batches far larger than the buffer: the writer broadcasts each in a tight loop
    // from its own thread. Whether the stream falls behind depends on scheduling, so a
    // busy machine may need a few bursts before one outruns it.
    let mut resync = None;
    for round in 0..10u64 {
        let burst = (0..500)
            .map(|i| {
                let key = format!("lag{round}-{i}");
                alert(&key, AlertKind::NewEdge, Severity::Low, i)
            })
            .collect();
        s.publish(burst, vec![]).await;
        let events = read_sse(&mut stream, &["resync"], 1, Duration::from_secs(3)).await;
        resync = events.into_iter().find(|(n, _)| n == "resync");
        if resync.is_some() {
            break;
        }
    }
    let resync = resync.expect("resync event");
    let missed: Value = serde_json::from_str(&resync.1).unwrap();
    assert!(missed["missed"].as_u64().unwrap() > 0);
    drop(stream);
    s.stop().await;
}
