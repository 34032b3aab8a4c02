//! Evasions and false alerts that live in how spans become calls (#15 items 2, 3, 7),
//! through the real binary: learn ten minutes of event time over gRPC, then send what
//! used to slip through or raise noise.
//!
//! * A pod that forges another workload's `service.name` and principal on its client span
//!   is named by the principal the callee observed: `identity_mismatch`.
//! * A call that timed out (no server span), naming its callee by any spelling of its
//!   Kubernetes name, is the known call it is, with the known route template: no
//!   `new_edge`, no `new_endpoint`.
//! * Raw paths (no `http.route`) take the template of the route they reach; `/%61dmin`,
//!   `/admin;x=1` and `/a/../admin` read as `/admin` and are sensitive.

mod otlp_support;

use std::time::{Duration, Instant};

use eastwest_datasets::kv;
use eastwest_model::Call;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_support::*;
use serde_json::Value;

const SEC: u64 = 1_000_000_000;
const CLIENT: i32 = 3;
const SERVER: i32 = 2;
/// Learning lasts 10 minutes from the first call; normal traffic runs 11.
const LEARNED_SECS: u64 = 660;

const CART: &str = "spiffe://cluster.local/ns/shop/sa/cart";
const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";

/// The id of trace `n` as the calls carry it.
fn trace_hex(n: u64) -> String {
    format!("{:032x}", u128::from(n + 1))
}

/// One span of trace `n` emitted by `service` in namespace `shop`.
fn span(
    service: &str,
    n: u64,
    (id, parent, kind): (u8, Option<u8>, i32),
    start: u64,
    attrs: Vec<KeyValue>,
) -> ResourceSpans {
    let mut trace_id = vec![0u8; 16];
    trace_id[8..].copy_from_slice(&(n + 1).to_be_bytes());
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("k8s.namespace.name", "shop"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id,
                span_id: vec![id; 8],
                parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                name: "call".into(),
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: start + SEC / 100,
                attributes: attrs,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn client(service: &str, n: u64, start: u64, attrs: Vec<KeyValue>) -> ResourceSpans {
    span(service, n, (1, None, CLIENT), start, attrs)
}

fn server(service: &str, n: u64, start: u64, attrs: Vec<KeyValue>) -> ResourceSpans {
    span(service, n, (2, Some(1), SERVER), start + SEC / 1000, attrs)
}

fn get(extra: &[(&str, &str)]) -> Vec<KeyValue> {
    let mut attrs = vec![kv("http.request.method", "GET")];
    attrs.extend(extra.iter().map(|(k, v)| kv(k, v)));
    attrs
}

struct Mesh {
    serving: Serving,
    client: TraceServiceClient<tonic::transport::Channel>,
    t0: u64,
    _data: tempfile::TempDir,
}

impl Mesh {
    async fn start() -> Mesh {
        let data = tempfile::tempdir().unwrap();
        let serving = serve_on_free_ports(data.path(), &["--learning-period", "10m"])
            .await
            .unwrap();
        let client = TraceServiceClient::connect(format!("http://{}", serving.grpc))
            .await
            .unwrap();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
        Mesh {
            serving,
            client,
            t0: now - 40 * 60 * SEC,
            _data: data,
        }
    }

    fn at(&self, secs: u64) -> u64 {
        self.t0 + secs * SEC
    }

    async fn send(&mut self, resource_spans: Vec<ResourceSpans>) {
        for chunk in resource_spans.chunks(100) {
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

    /// `traffic(n, start)` every 2 s of event time over [from, to) seconds; traces
    /// numbered from `first`.
    async fn every_2s(
        &mut self,
        (from, to): (u64, u64),
        first: u64,
        traffic: impl Fn(u64, u64) -> Vec<ResourceSpans>,
    ) {
        let mut spans = Vec::new();
        for (i, secs) in (from..to).step_by(2).enumerate() {
            spans.extend(traffic(first + 10 * i as u64, self.at(secs)));
        }
        self.send(spans).await;
    }

    async fn alerts(&self) -> Vec<Value> {
        alerts(self.serving.api).await
    }

    async fn wait_for_alert(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        wait_for_alert(self.serving.api, what, pick).await
    }

    /// The recent calls of these traces (all of them must be there).
    async fn calls_of(&self, traces: &[u64]) -> Vec<Call> {
        let url = format!("http://{}/api/v1/calls/recent?limit=1000", self.serving.api);
        let ids: Vec<String> = traces.iter().map(|n| trace_hex(*n)).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = get_json(&url).await.unwrap();
            let calls: Vec<Call> = serde_json::from_value(body["calls"].clone()).unwrap();
            let mine: Vec<Call> = calls
                .into_iter()
                .filter(|c| ids.iter().any(|id| *id == c.trace_id))
                .collect();
            if mine.len() >= ids.len() {
                return mine;
            }
            assert!(
                Instant::now() < deadline,
                "calls of {traces:?} missing: {mine:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn is(alert: &Value, kind: &str, source: &str, destination: &str) -> bool {
    alert["kind"] == kind
        && alert["source"]["service"] == source
        && alert["destination"]["service"] == destination
}

/// cart and frontend both call payments over mTLS; payments observes who called.
fn payments_traffic(n: u64, start: u64) -> Vec<ResourceSpans> {
    let mut out = Vec::new();
    for (i, (caller, principal)) in [("cart", CART), ("frontend", FRONTEND)]
        .into_iter()
        .enumerate()
    {
        let n = n + i as u64;
        out.push(client(
            caller,
            n,
            start,
            vec![
                kv("http.request.method", "POST"),
                kv("server.address", "payments"),
                kv("source.principal", principal),
            ],
        ));
        out.push(server(
            "payments",
            n,
            start,
            vec![
                kv("http.request.method", "POST"),
                kv("http.route", "/charge"),
                kv("source.principal", principal),
            ],
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_caller_identity_is_an_identity_mismatch() {
    let mut mesh = Mesh::start().await;
    mesh.every_2s((0, LEARNED_SECS), 0, payments_traffic).await;

    // cart's pod claims to be frontend, name and principal; payments saw cart's
    // certificate on the connection.
    let forged = 1_000_000;
    let at = mesh.at(LEARNED_SECS + 20);
    let attack = vec![
        client(
            "frontend",
            forged,
            at,
            vec![
                kv("http.request.method", "POST"),
                kv("server.address", "payments"),
                kv("source.principal", FRONTEND),
            ],
        ),
        server(
            "payments",
            forged,
            at,
            vec![
                kv("http.request.method", "POST"),
                kv("http.route", "/charge"),
                kv("source.principal", CART),
            ],
        ),
    ];
    mesh.send(attack).await;
    mesh.every_2s(
        (LEARNED_SECS, LEARNED_SECS + 60),
        2_000_000,
        payments_traffic,
    )
    .await;

    let alert = mesh
        .wait_for_alert("identity_mismatch frontend → payments", |a| {
            is(a, "identity_mismatch", "frontend", "payments")
        })
        .await;
    assert_eq!(alert["source"]["principal"], CART, "{alert:#}");
    assert!(
        alert["summary"].as_str().unwrap().contains("cart"),
        "the summary names whose identity it is: {alert:#}"
    );
    let calls = mesh.calls_of(&[forged]).await;
    assert_eq!(calls[0].source.key(), "frontend.shop");
    assert_eq!(calls[0].source.principal.as_deref(), Some(CART));
    assert_eq!(calls[0].claimed_principal.as_deref(), Some(FRONTEND));

    // Honest calls of both callers raised nothing of the kind.
    let honest = mesh
        .alerts()
        .await
        .into_iter()
        .filter(|a| a["kind"] == "identity_mismatch" && a["id"] != alert["id"])
        .count();
    assert_eq!(honest, 0);
}

/// frontend → foo-service, answered: the callee's spans name it and its route template;
/// the client records the raw URL under a short name.
fn items_traffic(n: u64, start: u64) -> Vec<ResourceSpans> {
    let city = ["Paris", "Lyon", "New%20York", "S%C3%A3o%20Paulo"][(n as usize / 10) % 4];
    vec![
        client(
            "frontend",
            n,
            start,
            get(&[
                ("server.address", "foo-service"),
                ("server.port", "8080"),
                (
                    "url.full",
                    &format!("http://foo-service:8080/api/v1/x/items/{city}"),
                ),
            ]),
        ),
        server(
            "foo-service",
            n,
            start,
            get(&[("http.route", "/api/v1/x/items/{city}")]),
        ),
        client(
            "cart",
            n + 1,
            start,
            get(&[("server.address", "users.shop.svc.cluster.local")]),
        ),
        server(
            "users",
            n + 1,
            start,
            get(&[("http.route", "/users/{id}"), ("url.path", "/users/7")]),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_call_by_a_short_name_is_the_known_call() {
    let mut mesh = Mesh::start().await;
    mesh.every_2s((0, LEARNED_SECS), 0, items_traffic).await;

    // Timeouts: no server span, the callee named as the caller addressed it.
    let hosts = [
        "foo-service",
        "foo-service.shop",
        "foo-service.shop.svc",
        "foo-service.shop.svc.cluster.local",
    ];
    let mut timeouts = Vec::new();
    let mut traces = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let n = 1_000_000 + i as u64;
        traces.push(n);
        let url = format!("http://{host}:8080/api/v1/x/items/Rio%20de%20Janeiro");
        timeouts.push(client(
            "frontend",
            n,
            mesh.at(LEARNED_SECS + 10 + i as u64),
            get(&[("server.address", host), ("url.full", &url)]),
        ));
    }
    // Then a call to a service frontend never called: the detector is live.
    timeouts.push(client(
        "frontend",
        1_000_100,
        mesh.at(LEARNED_SECS + 30),
        get(&[("server.address", "ledger"), ("url.path", "/entries")]),
    ));
    mesh.send(timeouts).await;
    mesh.every_2s((LEARNED_SECS, LEARNED_SECS + 60), 2_000_000, items_traffic)
        .await;

    mesh.wait_for_alert("about frontend → ledger", |a| {
        a["source"]["service"] == "frontend" && a["destination"]["service"] == "ledger"
    })
    .await;
    for call in mesh.calls_of(&traces).await {
        assert_eq!(call.destination.key(), "foo-service.shop", "{call:?}");
        assert_eq!(call.route, "/api/v1/x/items/{city}", "{call:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let noise: Vec<Value> = mesh
        .alerts()
        .await
        .into_iter()
        .filter(|a| {
            a["destination"]["service"]
                .as_str()
                .is_some_and(|d| d.starts_with("foo-service"))
        })
        .collect();
    assert!(noise.is_empty(), "known calls alerted: {noise:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_paths_read_as_the_route_they_reach() {
    let mut mesh = Mesh::start().await;
    mesh.every_2s((0, LEARNED_SECS), 0, items_traffic).await;

    let at = |i: u64| mesh.at(LEARNED_SECS + 10 + i);
    let mut spans = Vec::new();
    // A server that records raw paths only (a request rejected before routing, an
    // instrumentation without routes): variants of the known route.
    let variants = [
        ("/api/v1/x/items/Rio%20de%20Janeiro", "200"),
        ("/api/v1/x/items/Rio%20De%20Janeiro?page=2", "200"),
        ("//api/v1/x/./items/Lima;v=1", "401"),
        ("/api/v1/x/items/%42ogot%C3%A1", "200"),
    ];
    let mut variant_traces = Vec::new();
    for (i, (path, status)) in variants.iter().enumerate() {
        let n = 1_000_000 + 10 * i as u64;
        variant_traces.push(n);
        spans.push(client(
            "frontend",
            n,
            at(i as u64),
            get(&[("server.address", "foo-service")]),
        ));
        spans.push(server(
            "foo-service",
            n,
            at(i as u64),
            get(&[("url.path", path), ("http.response.status_code", status)]),
        ));
    }
    // cart reaches users' admin API by spellings that hide the word.
    let evasions = ["/%61dmin/users", "/admin;x=1/users", "/a/../admin/users"];
    let mut evasion_traces = Vec::new();
    for (i, path) in evasions.iter().enumerate() {
        let n = 1_100_000 + 10 * i as u64;
        evasion_traces.push(n);
        spans.push(client(
            "cart",
            n,
            at(20 + i as u64),
            get(&[("server.address", "users.shop.svc.cluster.local")]),
        ));
        spans.push(server(
            "users",
            n,
            at(20 + i as u64),
            get(&[("url.path", path)]),
        ));
    }
    mesh.send(spans).await;
    mesh.every_2s((LEARNED_SECS, LEARNED_SECS + 60), 2_000_000, items_traffic)
        .await;

    let alert = mesh
        .wait_for_alert("sensitive_endpoint cart → users", |a| {
            is(a, "sensitive_endpoint", "cart", "users")
        })
        .await;
    assert_eq!(alert["route"], "/admin/users", "{alert:#}");
    for call in mesh.calls_of(&evasion_traces).await {
        assert_eq!(call.route, "/admin/users", "{call:?}");
    }
    for call in mesh.calls_of(&variant_traces).await {
        assert_eq!(call.route, "/api/v1/x/items/{city}", "{call:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let noise: Vec<Value> = mesh
        .alerts()
        .await
        .into_iter()
        .filter(|a| a["destination"]["service"] == "foo-service")
        .collect();
    assert!(
        noise.is_empty(),
        "raw spellings of a known route alerted: {noise:#?}"
    );
}
