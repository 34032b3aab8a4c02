//! Shared test fixtures: an in-memory [`Backend`], alert builders, and a running server.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use eastwest_api::{
    AlertStore, ApiConfig, ApiState, Backend, EdgeDetail, EdgeStatus, EndpointSummary, GraphEdge,
    GraphNode, GraphSnapshot, Stats, WebhookConfig,
};
use eastwest_model::{
    Alert, AlertKind, AlertState, BaselineCounts, BaselineStatus, Incident, LearningPhase,
    MetricsSnapshot, Severity, Workload,
};
use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

pub fn edge(s: &str, d: &str, calls: f64, status: EdgeStatus) -> GraphEdge {
    GraphEdge {
        source: s.into(),
        destination: d.into(),
        calls,
        errors: calls / 10.0,
        first_seen: at(0),
        last_seen: at(100),
        mtls_ratio: Some(1.0),
        protocols: vec![eastwest_model::Protocol::Http],
        status,
    }
}

/// Pipeline state held in memory: a small mesh, a learning flag, accepted alerts.
pub struct TestBackend {
    pub graph: Mutex<GraphSnapshot>,
    pub accepted: Mutex<Vec<String>>,
    pub detecting: Mutex<bool>,
    pub ready: Mutex<bool>,
}

impl Default for TestBackend {
    fn default() -> Self {
        let node = |key: &str| {
            let (service, ns) = key.split_once('.').unwrap();
            GraphNode {
                id: key.into(),
                service: service.into(),
                namespace: Some(ns.into()),
            }
        };
        Self {
            graph: Mutex::new(GraphSnapshot {
                nodes: [
                    "frontend.shop",
                    "cart.shop",
                    "users.shop",
                    "db.shop",
                    "weird\"svc\\x.shop",
                ]
                .into_iter()
                .map(node)
                .collect(),
                edges: vec![
                    edge("frontend.shop", "cart.shop", 120.0, EdgeStatus::Baseline),
                    edge("cart.shop", "users.shop", 7.0, EdgeStatus::New),
                    edge("users.shop", "db.shop", 50.0, EdgeStatus::Baseline),
                    edge("weird\"svc\\x.shop", "db.shop", 1.0, EdgeStatus::New),
                ],
            }),
            accepted: Mutex::new(Vec::new()),
            detecting: Mutex::new(false),
            ready: Mutex::new(true),
        }
    }
}

impl Backend for TestBackend {
    fn stats(&self) -> Stats {
        Stats {
            ingest: MetricsSnapshot {
                spans: 10,
                logs: 2,
                calls: 8,
                dropped: 1,
                ..Default::default()
            },
            watermark: Some("2023-11-14T22:15:00Z".into()),
            ..Default::default()
        }
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let spans = prometheus_client::metrics::counter::Counter::<u64>::default();
        spans.inc_by(10);
        registry.register("eastwest_spans", "Spans received", spans);
    }

    fn graph(&self) -> GraphSnapshot {
        self.graph.lock().clone()
    }

    fn edge_detail(&self, source: &str, destination: &str) -> Option<EdgeDetail> {
        let edge = self
            .graph
            .lock()
            .edges
            .iter()
            .find(|e| e.source == source && e.destination == destination)?
            .clone();
        Some(EdgeDetail {
            edge,
            endpoints: vec![EndpointSummary {
                method: "GET".into(),
                route: "/cart/{id}".into(),
                calls: 5.0,
                errors: 0.0,
                first_seen: at(0),
                last_seen: at(50),
            }],
            trace_ids: vec!["4bf92f3577b34da6a3ce929d0e0e4736".into()],
            alerts: vec![],
        })
    }

    fn baseline_status(&self) -> BaselineStatus {
        let detecting = *self.detecting.lock();
        BaselineStatus {
            state: if detecting {
                LearningPhase::Detecting
            } else {
                LearningPhase::Learning
            },
            learning_started: Some("2023-11-14T22:13:20Z".into()),
            learning_ends: Some(
                if detecting {
                    "2023-11-14T22:14:20Z"
                } else {
                    "2023-11-15T22:13:20Z"
                }
                .into(),
            ),
            learned_seconds: 60.0,
            learning_period_seconds: 86400.0,
            watermark: Some("2023-11-14T22:14:20Z".into()),
            counts: BaselineCounts {
                edges: 3,
                endpoints: 5,
                contexts: 4,
                workloads: 4,
            },
            rollout_changes: Vec::new(),
        }
    }

    fn end_learning(&self) -> BaselineStatus {
        *self.detecting.lock() = true;
        self.baseline_status()
    }

    fn accept(&self, alert: &Alert) {
        self.accepted.lock().push(alert.id.clone());
    }

    fn ready(&self) -> bool {
        *self.ready.lock()
    }
}

pub fn alert(id: &str, kind: AlertKind, severity: Severity, last_seen: i64) -> Alert {
    Alert {
        id: id.into(),
        kind,
        severity,
        score: 9.1,
        source: Workload::new("cart")
            .in_namespace("shop")
            .with_principal("spiffe://cluster.local/ns/shop/sa/cart"),
        destination: Some(Workload::new("users").in_namespace("shop")),
        method: Some("DELETE".into()),
        route: Some("/admin/users/{id}".into()),
        entry: Some(eastwest_model::Entry {
            service: "frontend".into(),
            route: "GET /cart".into(),
        }),
        first_seen: at(last_seen - 10),
        last_seen: at(last_seen),
        count: 1,
        trace_ids: vec!["4bf92f3577b34da6a3ce929d0e0e4736".into()],
        incident_id: Some("inc-1".into()),
        summary: format!("cart called users DELETE /admin/users/{{id}} for the first time ({id})"),
        evidence: serde_json::Map::new(),
        state: AlertState::Open,
    }
}

pub fn incident(id: &str, alert_ids: &[&str]) -> Incident {
    Incident {
        id: id.into(),
        source: Workload::new("cart").in_namespace("shop"),
        severity: Severity::High,
        score: 12.0,
        first_seen: at(0),
        last_seen: at(100),
        alert_ids: alert_ids.iter().map(|s| s.to_string()).collect(),
        path: vec!["cart.shop".into(), "users.shop".into()],
        suppressed: 0,
        summary: "cart probed users".into(),
    }
}

/// A real server on a loopback port over a store in a temp dir.
pub struct Server {
    pub state: ApiState,
    pub backend: Arc<TestBackend>,
    pub base: String,
    pub cancel: CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
    pub client: reqwest::Client,
}

impl Server {
    pub async fn start(
        data_dir: &std::path::Path,
        config: ApiConfig,
        webhooks: Vec<WebhookConfig>,
    ) -> Self {
        let store = AlertStore::open(data_dir).unwrap();
        let backend = Arc::new(TestBackend::default());
        let state = ApiState::new(config, store, backend.clone())
            .unwrap()
            .with_webhooks(webhooks)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(
            eastwest_api::serve(listener, state.clone(), cancel.clone()).map_ok_unit(),
        );
        Self {
            state,
            backend,
            base,
            cancel,
            handle,
            client: marked_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn publish(&self, alerts: Vec<Alert>, incidents: Vec<Incident>) {
        let sink = self.state.sink();
        sink.publish(alerts, incidents);
        assert!(
            sink.flush(Duration::from_secs(10)).await,
            "sink flush timed out"
        );
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("server did not stop")
            .unwrap();
    }
}

/// A client that sends `X-Eastwest-Request: 1`, as every non-browser client of a
/// token-less API must on state-changing requests.
pub fn marked_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-eastwest-request",
        reqwest::header::HeaderValue::from_static("1"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

trait MapOkUnit {
    fn map_ok_unit(self) -> impl std::future::Future<Output = ()> + Send;
}

impl<F> MapOkUnit for F
where
    F: std::future::Future<Output = Result<(), eastwest_api::ApiError>> + Send,
{
    async fn map_ok_unit(self) {
        self.await.expect("serve failed");
    }
}

/// Reads SSE frames from a streaming response until `want` events named in `names`
/// arrived or `timeout` passes. Returns (event, data) pairs of every frame seen.
pub async fn read_sse(
    response: &mut reqwest::Response,
    names: &[&str],
    want: usize,
    timeout: Duration,
) -> Vec<(String, String)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while events
        .iter()
        .filter(|(n, _): &&(String, String)| names.contains(&n.as_str()))
        .count()
        < want
    {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() || name != "message" {
                events.push((name, data));
            }
        }
    }
    events
}
