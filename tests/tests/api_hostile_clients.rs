//! Hostile HTTP clients against the real binary's API: what a web page in the operator's
//! browser can send (a cross-site `text/plain` POST, a rebound `Host`, a frame) changes
//! nothing and reads nothing, while the API's own clients still work; with a token set,
//! `/metrics` (every learned edge) needs it unless `[api] metrics_public` opens it.

mod otlp_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use otlp_support::*;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const SEC: u64 = 1_000_000_000;
/// Where the forged requests come from.
const EVIL_ORIGIN: &str = "http://evil.example";
/// A name a DNS-rebinding attacker points at 127.0.0.1.
const REBOUND: &str = "rebind.example";

fn attrs(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
        .collect()
}

/// `from` CLIENT → `to` SERVER (`method route`) as OTLP/JSON resource spans.
fn pair(n: u64, from: &str, to: &str, method: &str, route: &str, start: u64) -> Vec<Value> {
    let trace_id = format!("{:032x}", n + 1);
    let span = |id: &str, parent: &str, kind: u8, extra: &[(&str, &str)]| {
        let mut a = vec![("http.request.method", method), ("http.route", route)];
        a.extend_from_slice(extra);
        json!({
            "traceId": trace_id, "spanId": id, "parentSpanId": parent,
            "name": format!("{method} {route}"), "kind": kind,
            "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + SEC / 100).to_string(),
            "attributes": attrs(&a),
        })
    };
    let resource = |service: &str, span: Value| {
        json!({
            "resource": {"attributes": attrs(&[("service.name", service), ("k8s.namespace.name", "shop")])},
            "scopeSpans": [{"spans": [span]}],
        })
    };
    vec![
        resource(
            from,
            span("0000000000000001", "", 3, &[("server.address", to)]),
        ),
        resource(to, span("0000000000000002", "0000000000000001", 2, &[])),
    ]
}

async fn send(http: SocketAddr, resource_spans: Vec<Value>) {
    let r = Client::new()
        .post(format!("http://{http}/v1/traces"))
        .json(&json!({ "resourceSpans": resource_spans }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "OTLP/HTTP: {}", r.status());
}

/// What a page on another site can send without a CORS preflight: a `text/plain` POST
/// (a form with `enctype="text/plain"`, or `fetch` in `no-cors` mode). Browsers add the
/// page's `Origin`; `origin = None` is a browser or redirect that leaves it out.
async fn forged_post(api: SocketAddr, path: &str, origin: Option<&str>) -> Response {
    let mut request = Client::new()
        .post(format!("http://{api}{path}"))
        .header("content-type", "text/plain")
        .body(r#"{"by":"evil"}"#);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

/// The API's own kind of client: it marks state-changing requests.
async fn marked_post(api: SocketAddr, path: &str) -> Response {
    Client::new()
        .post(format!("http://{api}{path}"))
        .header("x-eastwest-request", "1")
        .json(&json!({"by": "operator"}))
        .send()
        .await
        .unwrap()
}

async fn get_with_host(api: SocketAddr, path: &str, host: &str) -> Response {
    Client::new()
        .get(format!("http://{api}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

async fn error_of(response: Response) -> String {
    let body: Value = response.json().await.expect("a JSON error body");
    body["error"]
        .as_str()
        .expect("an error message")
        .to_string()
}

fn assert_frame_headers(headers: &HeaderMap, what: &str) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_string()
    };
    assert!(
        get("content-security-policy").contains("frame-ancestors 'none'"),
        "{what}: {}",
        get("content-security-policy")
    );
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
}

async fn metrics_text(api: SocketAddr) -> String {
    let r = reqwest::get(format!("http://{api}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn refused(metrics: &str, reason: &str) -> u64 {
    let prefix = format!("eastwest_http_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
        .parse()
        .unwrap()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_cross_site_posts_change_nothing_and_foreign_hosts_read_nothing() {
    let data = tempfile::tempdir().unwrap();
    let serving = serve_on_free_ports(data.path(), &["--learning-period", "1h"])
        .await
        .unwrap();
    let api = serving.api;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let t0 = now - 40 * 60 * SEC;
    let mut normal = Vec::new();
    for i in 0..150 {
        normal.extend(pair(
            i,
            "cart",
            "users",
            "GET",
            "/users/{id}",
            t0 + i * 2 * SEC,
        ));
    }
    send(serving.http, normal).await;
    wait_for("learning to start", async || {
        let b = get_json(&format!("http://{api}/api/v1/baseline"))
            .await
            .ok()?;
        b["learning_started"].is_string().then_some(b)
    })
    .await;
    let before = metrics_text(api).await;

    // A page on another site tries to end learning.
    for origin in [Some(EVIL_ORIGIN), Some("null"), None] {
        let r = forged_post(api, "/api/v1/baseline/detect", origin).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "origin {origin:?}");
        assert_frame_headers(r.headers(), "a 403");
        let error = error_of(r).await;
        assert!(
            error.contains(if origin.is_some() {
                "cross-origin POST"
            } else {
                "X-Eastwest-Request"
            }),
            "{error}"
        );
    }
    // Even with the header a cross-origin page cannot send, its Origin gives it away.
    let r = Client::new()
        .post(format!("http://{api}/api/v1/baseline/detect"))
        .header("x-eastwest-request", "1")
        .header("origin", EVIL_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = get_json(&format!("http://{api}/api/v1/baseline"))
        .await
        .unwrap();
    assert_eq!(
        baseline["state"], "learning",
        "learning went on: {baseline}"
    );

    // The operator's own request (same origin, marked) ends it.
    let r = Client::new()
        .post(format!("http://{api}/api/v1/baseline/detect"))
        .header("x-eastwest-request", "1")
        .header("origin", format!("http://{api}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get_json(&format!("http://{api}/api/v1/baseline"))
            .await
            .unwrap()["state"],
        "detecting"
    );

    // cart calls an admin endpoint of a service it never called: an alert.
    let mut attack = Vec::new();
    for i in 0..5 {
        attack.extend(pair(
            1_000 + i,
            "cart",
            "ledger",
            "DELETE",
            "/admin/users/{id}",
            t0 + (600 + i) * SEC,
        ));
    }
    send(serving.http, attack).await;
    let alert = wait_for("an alert on cart → ledger", async || {
        let alerts = get_json(&format!("http://{api}/api/v1/alerts"))
            .await
            .ok()?;
        alerts["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["destination"]["service"] == "ledger")
            .cloned()
    })
    .await;
    assert_eq!(alert["state"], "open");
    let id = alert["id"].as_str().unwrap();
    let accept = format!("/api/v1/alerts/{id}/accept");
    let alert_url = format!("http://{api}/api/v1/alerts/{id}");

    // A page on another site tries to accept it (its id is a deterministic hash).
    for origin in [Some(EVIL_ORIGIN), None] {
        let r = forged_post(api, &accept, origin).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "origin {origin:?}");
    }
    let ack = forged_post(api, &format!("/api/v1/alerts/{id}/ack"), Some(EVIL_ORIGIN)).await;
    assert_eq!(ack.status(), StatusCode::FORBIDDEN);
    let still = get_json(&alert_url).await.unwrap();
    assert_eq!(still["state"], "open", "the alert was not touched: {still}");
    let edge = get_json(&format!(
        "http://{api}/api/v1/graph/edge?source=cart.shop&destination=ledger.shop"
    ))
    .await
    .unwrap();
    assert_ne!(edge["status"], "baseline", "nothing was learned: {edge}");

    let r = marked_post(api, &accept).await;
    assert_eq!(r.status(), 200);
    assert_eq!(get_json(&alert_url).await.unwrap()["state"], "accepted");

    // DNS rebinding: the attacker's name, now pointing here, reads nothing — neither the
    // API, the dashboard, the metrics nor the health probes.
    for path in ["/api/v1/alerts", "/", "/metrics", "/healthz"] {
        for host in [format!("{REBOUND}:{}", api.port()), REBOUND.to_string()] {
            let r = get_with_host(api, path, &host).await;
            assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{path} {host}");
            assert_frame_headers(r.headers(), "a 421");
            let error = error_of(r).await;
            assert!(
                error.contains(REBOUND) && error.contains("allowed_hosts"),
                "{error}"
            );
            assert!(!error.contains("ledger"), "{error}");
        }
    }
    let r = Client::new()
        .post(format!("http://{api}{accept}"))
        .header("host", REBOUND)
        .header("x-eastwest-request", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    // Loopback names and addresses are this server.
    for host in [
        format!("localhost:{}", api.port()),
        format!("127.0.0.1:{}", api.port()),
    ] {
        assert_eq!(
            get_with_host(api, "/api/v1/alerts", &host).await.status(),
            200,
            "{host}"
        );
    }

    // Every response refuses to be framed or sniffed.
    for path in [
        "/",
        "/api/v1/alerts",
        "/metrics",
        "/healthz",
        "/api/v1/nope",
    ] {
        let r = reqwest::get(format!("http://{api}{path}")).await.unwrap();
        assert_frame_headers(r.headers(), path);
    }

    let after = metrics_text(api).await;
    assert!(
        refused(&after, "origin") >= refused(&before, "origin") + 5,
        "{after}"
    );
    assert!(refused(&after, "missing_header") >= refused(&before, "missing_header") + 2);
    assert!(refused(&after, "host") >= refused(&before, "host") + 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_token_unless_opened() {
    let token = "s3cret-token";
    let data = tempfile::tempdir().unwrap();
    let serving = serve_on_free_ports(data.path(), &["--api-token", token])
        .await
        .unwrap();
    let url = format!("http://{}/metrics", serving.api);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(r).await, "unauthorized");
    let r = reqwest::get(format!("{url}?access_token={token}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no query-string token for /metrics");
    let r = Client::new()
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("traces_service_graph_request_total"),
        "{text}"
    );
    assert!(refused(&text, "token") >= 3, "{text}");
    for path in ["/healthz", "/readyz"] {
        let r = reqwest::get(format!("http://{}{path}", serving.api))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} stays open");
    }
    // With a token, a script's Authorization header is mark enough for a POST.
    let r = Client::new()
        .post(format!("http://{}/api/v1/baseline/detect", serving.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(serving);

    // Opened for an in-cluster scraper that reaches the pod by its Service name.
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("eastwest.toml");
    std::fs::write(
        &config,
        "[api]\nmetrics_public = true\nallowed_hosts = [\"eastwest.monitoring.svc\"]\n",
    )
    .unwrap();
    let serving = serve_on_free_ports(
        data.path(),
        &["--api-token", token, "--config", config.to_str().unwrap()],
    )
    .await
    .unwrap();
    let api = serving.api;
    let scraped = get_with_host(
        api,
        "/metrics",
        &format!("eastwest.monitoring.svc:{}", api.port()),
    )
    .await;
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("eastwest_http_refused_total")
    );
    let mut no_token = HeaderMap::new();
    no_token.insert("host", HeaderValue::from_static("eastwest.monitoring.svc"));
    let r = Client::new()
        .get(format!("http://{api}/api/v1/alerts"))
        .headers(no_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "only /metrics is opened");
    assert_eq!(
        get_with_host(api, "/metrics", "other.monitoring.svc")
            .await
            .status(),
        StatusCode::MISDIRECTED_REQUEST
    );
}
