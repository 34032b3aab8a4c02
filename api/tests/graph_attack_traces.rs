//! Through the real router and a real webhook receiver: alerts carry their ATT&CK
//! techniques, the trace link template reaches the dashboard and the payloads, and the
//! graph endpoints cut, aggregate, search and revalidate by ETag.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use common::{Server, alert};
use eastwest_api::{ApiConfig, WebhookConfig, WebhookKind};
use eastwest_model::{AlertKind, Severity};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TEMPLATE: &str = "https://tempo.example/explore?trace={trace_id}&x=1";

fn with_template() -> ApiConfig {
    ApiConfig {
        trace_url_template: Some(TEMPLATE.into()),
        ..Default::default()
    }
}

async fn get(s: &Server, path: &str) -> Value {
    let r = s.client.get(s.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn alerts_carry_their_techniques_and_the_ui_gets_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), with_template(), vec![]).await;
    let mut metadata = alert("m1", AlertKind::SensitiveEndpoint, Severity::Critical, 5);
    metadata
        .evidence
        .insert("pattern".into(), json!("cloud-metadata"));
    s.publish(
        vec![metadata, alert("f1", AlertKind::FanOut, Severity::High, 6)],
        vec![],
    )
    .await;
    let one = get(&s, "/api/v1/alerts/m1").await;
    let ids: Vec<&str> = one["attack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T1210", "T1552.005"]);
    assert_eq!(
        one["attack"][1]["url"],
        "https://attack.mitre.org/techniques/T1552/005/"
    );
    let list = get(&s, "/api/v1/alerts?kind=fan_out").await;
    assert_eq!(list["alerts"][0]["attack"][0]["id"], "T1046");
    assert_eq!(list["alerts"][0]["attack"][0]["tactic"], "Discovery");
    assert_eq!(
        get(&s, "/api/v1/ui").await,
        json!({ "trace_url_template": TEMPLATE })
    );
    s.stop().await;
}

#[test]
fn a_template_that_is_not_http_or_lacks_the_placeholder_is_refused_at_load() {
    for bad in [
        "javascript:alert(1)//{trace_id}",
        "https://jaeger.example/trace/",
        "file:///{trace_id}",
    ] {
        let config = ApiConfig {
            trace_url_template: Some(bad.into()),
            ..Default::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("trace_url_template"), "{bad}: {err}");
    }
    with_template().validate().unwrap();
}

#[tokio::test]
async fn the_generic_payload_has_techniques_and_encoded_trace_links() {
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let app = Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(log): State<Arc<Mutex<Vec<String>>>>, body: Bytes| async move {
                    log.lock().push(String::from_utf8_lossy(&body).into_owned());
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookConfig {
        name: "generic".into(),
        kind: WebhookKind::Generic,
        url,
        secret: Some("s".into()),
        ..Default::default()
    };
    let s = Server::start(dir.path(), with_template(), vec![hook]).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    let mut a = alert("g1", AlertKind::IdentityMismatch, Severity::High, 3);
    // A hostile trace id cannot leave its place in the URL.
    a.trace_ids = vec!["abc/../x?y=1#z".into()];
    s.publish(vec![a], vec![]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while received.lock().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body: Value = serde_json::from_str(&received.lock()[0]).unwrap();
    assert_eq!(body["id"], "g1");
    let ids: Vec<&str> = body["attack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T1078", "T1036"]);
    assert_eq!(
        body["trace_links"],
        json!(["https://tempo.example/explore?trace=abc%2F..%2Fx%3Fy%3D1%23z&x=1"])
    );
    cancel.cancel();
    worker.await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn graph_views_cut_aggregate_search_and_revalidate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ApiConfig::default(), vec![]).await;

    let ns = s
        .client
        .get(s.url("/api/v1/graph/namespaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(ns.status(), 200);
    let etag = ns.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = ns.json().await.unwrap();
    assert_eq!(body["nodes"][0]["id"], "shop");
    assert_eq!(body["nodes"][0]["services"], 5);
    assert_eq!(body["nodes"][0]["status"], "new");
    assert_eq!(
        body["edges"],
        json!([]),
        "one namespace: no edges between namespaces"
    );
    let again = s
        .client
        .get(s.url("/api/v1/graph/namespaces"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    // users.shop one hop: cart (caller) and db (callee).
    let focus = get(&s, "/api/v1/graph?focus=users.shop&hops=1").await;
    let mut keys: Vec<&str> = focus["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["cart.shop", "db.shop", "users.shop"]);
    assert_eq!(focus["total_nodes"], 5);
    let changed = get(&s, "/api/v1/graph?status=new").await;
    assert_eq!(
        changed["edges"].as_array().unwrap().len(),
        4,
        "new edges and their one hop of context"
    );
    let limited = get(&s, "/api/v1/graph?limit=2").await;
    assert_eq!(limited["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(limited["matched_nodes"], 5);
    let hits = get(&s, "/api/v1/graph/search?q=CART").await;
    assert_eq!(hits["services"][0]["id"], "cart.shop");
    let http = get(&s, "/api/v1/graph?protocol=http").await;
    assert_eq!(http["edges"].as_array().unwrap().len(), 4);
    assert_eq!(http["edges"][0]["protocols"], json!(["http"]));
    let grpc = get(&s, "/api/v1/graph?protocol=grpc").await;
    assert_eq!(grpc["edges"], json!([]));
    for bad in [
        "hops=9",
        "status=weird",
        "mtls=maybe",
        "protocol=smtp",
        "nope=1",
    ] {
        let r = s
            .client
            .get(s.url(&format!("/api/v1/graph?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    s.stop().await;
}
