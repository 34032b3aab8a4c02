//! Detector-side evasions of #15, each through the real binary: `eastwest serve` learns a
//! small mesh from OTLP spans for 10 minutes of event time, then the evasion is sent,
//! and what used to stay silent (or be folded, or be suppressed) now alerts.
//!
//! * 50 decoy findings in the target's namespace no longer hide a critical call; what the
//!   budget holds back is one `alert_storm` alert, delivered to a webhook.
//! * A forged `service.version` beside the running one does not turn a new endpoint
//!   into an info rollout notice: it alerts once the version failed to show a rollout.
//! * A workload that only ever received calls makes its first outbound call: a strong
//!   `new_edge`, not p = ½.
//! * A caller that suppressed its own spans (server span only, no principal): a
//!   finding, and `unknown → payments` is not learned.
//! * Calls into the Kubernetes API (secrets, RBAC self-review), etcd and the kubelet are
//!   sensitive by default.

mod otlp_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use eastwest_datasets::{kv, kv_int};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_support::*;
use parking_lot::Mutex;
use serde_json::Value;

const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const NS: &str = "shop";

/// A pod of a workload in namespace `shop`.
#[derive(Clone)]
struct Pod {
    service: &'static str,
    pod: String,
    version: Option<String>,
}

fn pod(service: &'static str) -> Pod {
    Pod {
        service,
        pod: format!("{service}-0"),
        version: None,
    }
}

fn versioned(service: &'static str, replica: u32, version: &str) -> Pod {
    Pod {
        service,
        pod: format!("{service}-{version}-{replica}"),
        version: Some(version.into()),
    }
}

fn resource_spans(p: &Pod, span: Span) -> ResourceSpans {
    let mut attributes = vec![
        kv("service.name", p.service),
        kv("k8s.namespace.name", NS),
        kv("k8s.pod.name", &p.pod),
    ];
    if let Some(v) = &p.version {
        attributes.push(kv("service.version", v));
    }
    ResourceSpans {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Builds spans with fresh trace and span ids.
#[derive(Default)]
struct Spans {
    traces: u64,
    out: Vec<ResourceSpans>,
}

impl Spans {
    fn ids(&mut self) -> (Vec<u8>, u64) {
        self.traces += 1;
        let mut trace = vec![0u8; 16];
        trace[..8].copy_from_slice(&0xe7a5_1000u64.to_be_bytes());
        trace[8..].copy_from_slice(&self.traces.to_be_bytes());
        (trace, self.traces << 8)
    }

    fn span(
        trace: &[u8],
        id: u64,
        parent: Option<u64>,
        kind: i32,
        t: u64,
        attributes: Vec<KeyValue>,
    ) -> Span {
        Span {
            trace_id: trace.to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
            name: "call".into(),
            kind,
            start_time_unix_nano: t,
            end_time_unix_nano: t + SEC / 100,
            attributes,
            ..Default::default()
        }
    }

    /// `from` CLIENT → `to` SERVER, both instrumented.
    fn pair(&mut self, from: &Pod, to: &Pod, method: &str, route: &str, t: u64) {
        let (trace, id) = self.ids();
        let client = Self::span(
            &trace,
            id + 1,
            None,
            3,
            t,
            vec![
                kv("http.request.method", method),
                kv("server.address", to.service),
                kv("url.path", route),
            ],
        );
        let server = Self::span(
            &trace,
            id + 2,
            Some(id + 1),
            2,
            t + 1000,
            vec![
                kv("http.request.method", method),
                kv("http.route", route),
                kv_int("http.response.status_code", 200),
            ],
        );
        self.out.push(resource_spans(from, client));
        self.out.push(resource_spans(to, server));
    }

    /// A SERVER span on `to` whose caller sent no span and named no principal.
    fn server_only(&mut self, to: &Pod, method: &str, route: &str, t: u64) {
        let (trace, id) = self.ids();
        let server = Self::span(
            &trace,
            id + 2,
            Some(id + 1),
            2,
            t,
            vec![kv("http.request.method", method), kv("http.route", route)],
        );
        self.out.push(resource_spans(to, server));
    }

    /// A CLIENT span from `from` to an address outside the mesh (no server span).
    fn client_only(&mut self, from: &Pod, method: &str, host: &str, port: i64, path: &str, t: u64) {
        let (trace, id) = self.ids();
        let client = Self::span(
            &trace,
            id + 1,
            None,
            3,
            t,
            vec![
                kv("http.request.method", method),
                kv("server.address", host),
                kv_int("server.port", port),
                kv("url.path", path),
            ],
        );
        self.out.push(resource_spans(from, client));
    }

    fn take(&mut self) -> Vec<ResourceSpans> {
        std::mem::take(&mut self.out)
    }
}

/// The cart pods as they normally run: three replicas of v1.
fn cart_pods() -> [Pod; 3] {
    [0, 1, 2].map(|i| versioned("cart", i, "v1"))
}

/// One tick of the normal mesh at `t`: frontend calls cart, payments and catalog (a
/// leaf: it never calls out); a cart pod (in turn) calls redis.
fn normal_tick(s: &mut Spans, t: u64, tick: usize, carts: &[Pod; 3]) {
    let frontend = pod("frontend");
    s.pair(&frontend, &pod("cart"), "GET", "/cart", t);
    s.pair(&frontend, &pod("payments"), "POST", "/charge", t + SEC);
    s.pair(&frontend, &pod("catalog"), "GET", "/products", t + 2 * SEC);
    s.pair(&carts[tick % 3], &pod("redis"), "GET", "/get", t + 3 * SEC);
}

/// Normal traffic every 5 s over `[from, to)`.
fn normal(s: &mut Spans, from: u64, to: u64, carts: &[Pod; 3]) {
    let mut t = from;
    let mut tick = 0;
    while t < to {
        normal_tick(s, t, tick, carts);
        t += 5 * SEC;
        tick += 1;
    }
}

struct Mesh {
    serving: Serving,
    client: TraceServiceClient<tonic::transport::Channel>,
    _data: tempfile::TempDir,
    /// Event time the traffic starts at (well inside the acceptance window).
    t0: u64,
}

impl Mesh {
    /// `eastwest serve` with a 10 min learning period and `config` (TOML), fed 10 min of
    /// the normal mesh: learning ends with the next call.
    async fn learned(config: &str) -> Mesh {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().join("eastwest.toml");
        std::fs::write(
            &path,
            format!("[pipeline]\nidle_advance = \"200ms\"\n{config}"),
        )
        .unwrap();
        let serving = serve_on_free_ports(
            &data.path().join("data"),
            &[
                "--config",
                path.to_str().unwrap(),
                "--learning-period",
                "10m",
            ],
        )
        .await
        .unwrap();
        let client = TraceServiceClient::connect(format!("http://{}", serving.grpc))
            .await
            .unwrap();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
        let mut mesh = Mesh {
            serving,
            client,
            _data: data,
            t0: now - 90 * MIN,
        };
        let mut s = Spans::default();
        normal(&mut s, mesh.t0, mesh.t0 + 10 * MIN, &cart_pods());
        mesh.send(s.take()).await;
        mesh
    }

    async fn send(&mut self, spans: Vec<ResourceSpans>) {
        for chunk in spans.chunks(200) {
            let resp = self
                .client
                .export(ExportTraceServiceRequest {
                    resource_spans: chunk.to_vec(),
                })
                .await
                .unwrap()
                .into_inner();
            let rejected = resp.partial_success.map_or(0, |p| p.rejected_spans);
            assert_eq!(rejected, 0, "spans refused");
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.serving.api)
    }

    async fn alerts(&self) -> Vec<Value> {
        alerts(self.serving.api).await
    }

    async fn wait_for_alert(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        wait_for_alert(self.serving.api, what, pick).await
    }

    async fn baseline(&self) -> Value {
        get_json(&self.url("/api/v1/baseline")).await.unwrap()
    }
}

fn is(a: &Value, kind: &str, source: &str) -> bool {
    a["kind"] == kind && a["source"]["service"] == source
}

/// Records the bodies of webhook deliveries.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    async fn receive(State(log): State<Arc<Mutex<Vec<String>>>>, body: Bytes) -> StatusCode {
        log.lock().push(String::from_utf8_lossy(&body).into_owned());
        StatusCode::OK
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn decoys_cannot_spend_the_budget_of_a_critical_call_and_the_storm_reaches_webhooks() {
    let (hook, deliveries) = webhook_receiver().await;
    let mut mesh = Mesh::learned(&format!(
        "[[webhooks]]\nname = \"soc\"\nkind = \"generic\"\nurl = \"{hook}\"\nsecret = \"s3cret\"\n"
    ))
    .await;
    let t = mesh.t0 + 10 * MIN;
    let mut s = Spans::default();
    // 50 forged decoys in the target's namespace: frontend calling endpoints of cart it
    // never called (each a new low alert), then the real attack.
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    ];
    for i in 0..50 {
        let route = format!("/decoy/{}-{}", words[i % 10], words[i / 10]);
        s.pair(
            &pod("frontend"),
            &pod("cart"),
            "GET",
            &route,
            t + i as u64 * SEC / 10,
        );
    }
    s.pair(
        &cart_pods()[0],
        &pod("payments"),
        "DELETE",
        "/admin/purge",
        t + 6 * SEC,
    );
    normal(&mut s, t + 10 * SEC, t + 3 * MIN, &cart_pods());
    mesh.send(s.take()).await;

    let purge = mesh
        .wait_for_alert("sensitive_endpoint DELETE /admin/purge", |a| {
            is(a, "sensitive_endpoint", "cart") && a["route"] == "/admin/purge"
        })
        .await;
    assert!(
        purge["severity"] == "critical" || purge["severity"] == "high",
        "{purge:#}"
    );
    let storm = mesh
        .wait_for_alert("alert_storm", |a| a["kind"] == "alert_storm")
        .await;
    // frontend's own share (10) was stored; the other 40 are counted in the storm.
    let storm = mesh
        .wait_for_alert("alert_storm with every decoy counted", |a| {
            a["id"] == storm["id"] && a["count"] == 40
        })
        .await;
    assert_eq!(storm["severity"], "high");
    assert_eq!(
        storm["evidence"]["suppressed_by_source"]["frontend.shop"],
        40
    );
    let decoys = mesh
        .alerts()
        .await
        .iter()
        .filter(|a| is(a, "new_endpoint", "frontend"))
        .count();
    assert_eq!(decoys, 10, "one source's share of the namespace budget");

    // Both reach the webhook: the critical call and the storm.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let bodies = deliveries.lock().clone();
        let purge_sent = bodies.iter().any(|b| b.contains("/admin/purge"));
        let storm_sent = bodies.iter().any(|b| b.contains("\"alert_storm\""));
        if purge_sent && storm_sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhook deliveries (purge {purge_sent}, storm {storm_sent}): {bodies:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_version_does_not_fold_a_new_endpoint_into_a_rollout_notice() {
    let mut mesh = Mesh::learned("").await;
    let t = mesh.t0 + 10 * MIN;
    let mut s = Spans::default();
    // One cart pod of three now claims version v9 (the other two keep running v1) and
    // calls an endpoint of redis that cart never called.
    let carts = [
        versioned("cart", 0, "v1"),
        versioned("cart", 1, "v1"),
        versioned("cart", 2, "v9"),
    ];
    normal(&mut s, t, t + 30 * SEC, &carts);
    s.pair(&carts[2], &pod("redis"), "POST", "/flushall", t + 31 * SEC);
    // The traffic goes on past the version's evidence window (10 min).
    normal(&mut s, t + 35 * SEC, t + 13 * MIN, &carts);
    mesh.send(s.take()).await;

    let alert = mesh
        .wait_for_alert("new_endpoint POST /flushall", |a| {
            is(a, "new_endpoint", "cart") && a["route"] == "/flushall"
        })
        .await;
    assert_ne!(alert["severity"], "info", "{alert:#}");
    assert!(
        alert["evidence"].get("rollout_version").is_none(),
        "{alert:#}"
    );
    let first_seen: chrono::DateTime<chrono::Utc> =
        alert["first_seen"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        first_seen.timestamp_nanos_opt().unwrap() as u64 / SEC,
        (t + 31 * SEC) / SEC,
        "held, then alerted with the call's own time"
    );
    let notices: Vec<Value> = mesh
        .alerts()
        .await
        .into_iter()
        .filter(|a| a["severity"] == "info")
        .collect();
    assert!(notices.is_empty(), "no rollout notice: {notices:#?}");
    // The baseline's view is published every few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let v9 = loop {
        let baseline = mesh.baseline().await;
        let v9 = baseline["rollout_changes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["version"] == "v9").cloned());
        if let Some(v9) = v9 {
            break v9;
        }
        assert!(Instant::now() < deadline, "v9 is not tracked: {baseline:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(v9["confirmed"], false, "{v9:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaf_workload_s_first_outbound_call_is_a_strong_new_edge() {
    let mut mesh = Mesh::learned("").await;
    let t = mesh.t0 + 10 * MIN;
    let mut s = Spans::default();
    normal(&mut s, t, t + MIN, &cart_pods());
    // catalog only ever received calls; now it calls payments.
    s.pair(
        &pod("catalog"),
        &pod("payments"),
        "POST",
        "/refund",
        t + MIN + SEC,
    );
    normal(&mut s, t + MIN + 5 * SEC, t + 3 * MIN, &cart_pods());
    mesh.send(s.take()).await;

    let alert = mesh
        .wait_for_alert("new_edge catalog → payments", |a| {
            is(a, "new_edge", "catalog") && a["destination"]["service"] == "payments"
        })
        .await;
    assert_eq!(alert["evidence"]["leaf_workload"], true, "{alert:#}");
    // 120 calls received in learning, none made: p = 1/122.
    assert!(alert["score"].as_f64().unwrap() > 4.7, "{alert:#}");
    assert!(
        alert["evidence"]["baseline_received_calls"]
            .as_f64()
            .unwrap()
            >= 120.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unattributed_caller_is_a_finding_and_is_never_learned() {
    let mut mesh = Mesh::learned("").await;
    let t = mesh.t0 + 10 * MIN;
    let mut s = Spans::default();
    normal(&mut s, t, t + MIN, &cart_pods());
    // payments receives a call whose caller sent no span and presented no identity.
    s.server_only(&pod("payments"), "POST", "/charge", t + MIN + SEC);
    normal(&mut s, t + MIN + 5 * SEC, t + 3 * MIN, &cart_pods());
    mesh.send(s.take()).await;

    let alert = mesh
        .wait_for_alert("new_edge unknown → payments", |a| {
            is(a, "new_edge", "unknown") && a["destination"]["service"] == "payments"
        })
        .await;
    assert_eq!(alert["evidence"]["unattributed_caller"], true, "{alert:#}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("a caller that cannot be attributed"),
        "{alert:#}"
    );
    // Not learned as normal: the graph has no baseline edge from unknown.
    let graph = get_json(&mesh.url("/api/v1/graph")).await.unwrap();
    let learned = graph["edges"].as_array().unwrap().iter().any(|e| {
        e["source"].as_str().unwrap_or("").starts_with("unknown") && e["status"] == "baseline"
    });
    assert!(!learned, "{graph:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_into_the_control_plane_are_sensitive_by_default() {
    let mut mesh = Mesh::learned("").await;
    let t = mesh.t0 + 10 * MIN;
    let mut s = Spans::default();
    normal(&mut s, t, t + MIN, &cart_pods());
    let cart = &cart_pods()[0];
    let api = "kubernetes.default.svc";
    s.client_only(
        cart,
        "GET",
        api,
        443,
        "/api/v1/namespaces/shop/secrets",
        t + MIN + SEC,
    );
    s.client_only(
        cart,
        "POST",
        api,
        443,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        t + MIN + 2 * SEC,
    );
    s.client_only(cart, "GET", "10.0.0.21", 10250, "/pods", t + MIN + 3 * SEC);
    s.client_only(
        cart,
        "GET",
        "10.0.0.10",
        2379,
        "/version",
        t + MIN + 4 * SEC,
    );
    normal(&mut s, t + MIN + 5 * SEC, t + 3 * MIN, &cart_pods());
    mesh.send(s.take()).await;

    for pattern in [
        "kubernetes-secrets",
        "kubernetes-rbac-review",
        "kubelet",
        "etcd",
    ] {
        let alert = mesh
            .wait_for_alert(&format!("sensitive_endpoint {pattern}"), |a| {
                is(a, "sensitive_endpoint", "cart") && a["evidence"]["pattern"] == pattern
            })
            .await;
        assert!(
            alert["severity"] == "high" || alert["severity"] == "critical",
            "{alert:#}"
        );
    }
}
