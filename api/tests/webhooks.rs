//! Webhook delivery to a real local HTTP receiver: signatures, retries after 500 and
//! 429, exactly-once per delivery id across restarts, dead letters, rate limits, and
//! the Slack and Falco payloads.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{Server, alert};
use eastwest_api::webhook::delivery::signature;
use eastwest_api::{ApiConfig, WebhookConfig, WebhookKind};
use eastwest_model::{AlertKind, Severity};
use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "hook-secret";

#[derive(Debug, Clone)]
struct Received {
    delivery_id: String,
    signature: Option<String>,
    body: String,
    at: Instant,
    answered: u16,
}

/// What the receiver answers to the n-th attempt (1-based) of one delivery id.
type Script = Arc<dyn Fn(usize) -> (u16, Option<&'static str>) + Send + Sync>;

#[derive(Clone)]
struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    script: Script,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let delivery_id = headers
        .get("x-eastwest-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut log = r.log.lock();
    let attempt = log.iter().filter(|x| x.delivery_id == delivery_id).count() + 1;
    let (status, retry_after) = (r.script)(attempt);
    log.push(Received {
        delivery_id,
        signature: headers
            .get("x-eastwest-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        answered: status,
    });
    let mut response = StatusCode::from_u16(status).unwrap().into_response();
    if let Some(ra) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", ra.parse().unwrap());
    }
    response
}

async fn start_receiver(script: Script) -> (String, Arc<Mutex<Vec<Received>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Receiver {
            log: log.clone(),
            script,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

fn generic(url: &str) -> WebhookConfig {
    WebhookConfig {
        name: "receiver".into(),
        kind: WebhookKind::Generic,
        url: url.into(),
        secret: Some(SECRET.into()),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        ..Default::default()
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn generic_webhook_is_signed_and_retried_after_500_and_429() {
    let (url, log) = start_receiver(Arc::new(|attempt| match attempt {
        1 => (500, None),
        2 => (429, Some("1")),
        _ => (200, None),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), ApiConfig::default(), vec![generic(&url)]).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    s.publish(
        vec![alert("w1", AlertKind::SensitiveEndpoint, Severity::High, 5)],
        vec![],
    )
    .await;

    wait_for("three attempts", Duration::from_secs(15), || {
        log.lock().len() >= 3
    })
    .await;
    let got = log.lock().clone();
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 429, 200]
    );
    assert!(
        got.iter()
            .all(|r| r.delivery_id == got[0].delivery_id && !r.delivery_id.is_empty()),
        "stable id"
    );
    for r in &got {
        assert_eq!(
            r.signature.as_deref(),
            Some(signature(SECRET, r.body.as_bytes()).as_str()),
            "valid HMAC"
        );
        assert_ne!(
            r.signature.as_deref(),
            Some(signature("other", r.body.as_bytes()).as_str())
        );
    }
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["id"], "w1");
    assert_eq!(body["kind"], "sensitive_endpoint");
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );

    // An update at the same severity is not re-announced; an escalation is.
    let mut update = alert("w1", AlertKind::SensitiveEndpoint, Severity::High, 9);
    update.count = 4;
    s.publish(vec![update.clone()], vec![]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.lock().len(), 3);
    update.severity = Severity::Critical;
    s.publish(vec![update], vec![]).await;
    wait_for("escalation delivery", Duration::from_secs(10), || {
        log.lock().len() >= 4
    })
    .await;
    let escalation = log.lock()[3].clone();
    assert_ne!(
        escalation.delivery_id, got[0].delivery_id,
        "a new announcement has a new id"
    );
    assert!(escalation.body.contains("\"critical\""));
    cancel.cancel();
    worker.await.unwrap();

    // The escalation's first attempt met the receiver's scripted 500 too.
    assert_eq!(escalation.answered, 500);
    assert_eq!(
        s.state
            .metrics()
            .delivery_count("receiver", eastwest_api::DeliveryOutcome::Delivered),
        1
    );
    assert_eq!(
        s.state
            .metrics()
            .delivery_count("receiver", eastwest_api::DeliveryOutcome::Failed),
        3
    );
    s.stop().await;
}

#[tokio::test]
async fn each_delivery_id_is_accepted_exactly_once_across_a_restart() {
    // First attempt of every delivery fails; later ones succeed.
    let (url, log) = start_receiver(Arc::new(|attempt| {
        if attempt == 1 {
            (503, None)
        } else {
            (200, None)
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookConfig {
        initial_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(2),
        ..generic(&url)
    };

    // Run 1: both deliveries fail once, then eastwest stops before the retry is due.
    let s = Server::start(dir.path(), ApiConfig::default(), vec![hook.clone()]).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    s.publish(
        vec![
            alert("r1", AlertKind::NewEdge, Severity::Medium, 1),
            alert("r2", AlertKind::Probing, Severity::High, 2),
        ],
        vec![],
    )
    .await;
    wait_for("first attempts", Duration::from_secs(10), || {
        log.lock().len() >= 2
    })
    .await;
    cancel.cancel();
    worker.await.unwrap();
    s.stop().await;
    let first_ids: Vec<String> = log.lock().iter().map(|r| r.delivery_id.clone()).collect();
    assert_eq!(log.lock().iter().filter(|r| r.answered == 503).count(), 2);

    // Run 2: a fresh process (store reopened, new worker) retries with the same ids.
    let s = Server::start(dir.path(), ApiConfig::default(), vec![hook.clone()]).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    wait_for("retries after restart", Duration::from_secs(15), || {
        log.lock().len() >= 4
    })
    .await;
    cancel.cancel();
    worker.await.unwrap();
    s.stop().await;

    // Run 3: nothing is left to send.
    let s = Server::start(dir.path(), ApiConfig::default(), vec![hook]).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    worker.await.unwrap();
    s.stop().await;

    let got = log.lock().clone();
    assert_eq!(got.len(), 4, "{got:#?}");
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    for r in got.iter().filter(|r| r.answered == 200) {
        *accepted.entry(r.delivery_id.as_str()).or_default() += 1;
    }
    let mut expected = first_ids.clone();
    expected.sort();
    let mut seen: Vec<String> = accepted.keys().map(|k| k.to_string()).collect();
    seen.sort();
    assert_eq!(seen, expected, "retries reuse the original delivery ids");
    assert!(
        accepted.values().all(|n| *n == 1),
        "each delivery id accepted exactly once: {accepted:?}"
    );
}

#[tokio::test]
async fn dead_letters_are_visible_in_the_api_and_metrics() {
    let (url, log) = start_receiver(Arc::new(|_| (500, None))).await;
    let (refusing_url, _) = start_receiver(Arc::new(|_| (400, None))).await;
    let dir = tempfile::tempdir().unwrap();
    let hooks = vec![
        WebhookConfig {
            max_attempts: 2,
            ..generic(&url)
        },
        WebhookConfig {
            name: "refusing".into(),
            ..generic(&refusing_url)
        },
        WebhookConfig {
            name: "critical-only".into(),
            min_severity: Severity::Critical,
            ..generic(&url)
        },
    ];
    let s = Server::start(dir.path(), ApiConfig::default(), hooks).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    s.publish(
        vec![alert("d1", AlertKind::Plaintext, Severity::High, 3)],
        vec![],
    )
    .await;

    let mut dead = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        dead = s.get_json("/api/v1/webhooks/dead-letters").await.1;
        if dead["dead_letters"].as_array().map_or(0, Vec::len) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = dead["dead_letters"].as_array().expect("dead letters");
    assert_eq!(rows.len(), 2, "{dead}");
    let retried = rows
        .iter()
        .find(|r| r["destination"] == "receiver")
        .unwrap();
    assert_eq!(retried["attempts"], 2);
    assert_eq!(retried["alert_id"], "d1");
    assert!(retried["last_error"].as_str().unwrap().contains("500"));
    let refused = rows
        .iter()
        .find(|r| r["destination"] == "refusing")
        .unwrap();
    assert_eq!(refused["attempts"], 1, "4xx is not retried");
    assert_eq!(
        log.lock().len(),
        2,
        "the critical-only hook got nothing for a high alert"
    );

    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("eastwest_webhook_dead_letters 2\n"), "{text}");
    assert!(text.contains(
        "eastwest_webhook_deliveries_total{destination=\"receiver\",outcome=\"dead_lettered\"} 1"
    ));
    cancel.cancel();
    worker.await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_holds_back_deliveries_beyond_the_budget() {
    let (url, log) = start_receiver(Arc::new(|_| (200, None))).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        ApiConfig::default(),
        vec![WebhookConfig {
            max_per_minute: 2,
            ..generic(&url)
        }],
    )
    .await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    let alerts = (0..3)
        .map(|i| alert(&format!("rl{i}"), AlertKind::FanOut, Severity::High, i))
        .collect();
    s.publish(alerts, vec![]).await;
    wait_for("two deliveries", Duration::from_secs(10), || {
        log.lock().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        log.lock().len(),
        2,
        "the third waits for the budget (30 s at 2/min)"
    );
    assert!(
        s.state
            .metrics()
            .delivery_count("receiver", eastwest_api::DeliveryOutcome::RateLimited)
            >= 1
    );
    let counts = s.state.store().outbox_counts().unwrap();
    assert!(
        counts.contains(&("receiver".into(), "pending".into(), 1)),
        "{counts:?}"
    );
    cancel.cancel();
    worker.await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn slack_and_falco_payloads_reach_their_receivers() {
    let (slack_url, slack_log) = start_receiver(Arc::new(|_| (200, None))).await;
    let (falco_url, falco_log) = start_receiver(Arc::new(|_| (200, None))).await;
    let dir = tempfile::tempdir().unwrap();
    let hooks = vec![
        WebhookConfig {
            name: "slack".into(),
            kind: WebhookKind::Slack,
            url: slack_url,
            secret: None,
            ..Default::default()
        },
        WebhookConfig {
            name: "falco".into(),
            kind: WebhookKind::Falco,
            url: falco_url,
            secret: None,
            ..Default::default()
        },
    ];
    let config = ApiConfig {
        public_url: Some("https://eastwest.example/".into()),
        trace_url_template: Some("https://jaeger.example/trace/{trace_id}".into()),
        ..Default::default()
    };
    let s = Server::start(dir.path(), config, hooks).await;
    let cancel = CancellationToken::new();
    let worker = s.state.start_webhook_worker(cancel.clone());
    s.publish(
        vec![alert(
            "sf1",
            AlertKind::IdentityMismatch,
            Severity::Critical,
            3,
        )],
        vec![],
    )
    .await;
    wait_for("both payloads", Duration::from_secs(10), || {
        !slack_log.lock().is_empty() && !falco_log.lock().is_empty()
    })
    .await;
    let slack: Value = serde_json::from_str(&slack_log.lock()[0].body).unwrap();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("identity mismatch")
    );
    let blocks = serde_json::to_string(&slack["blocks"]).unwrap();
    assert!(
        blocks.contains("https://eastwest.example/#/alerts/sf1"),
        "{blocks}"
    );
    assert!(
        blocks.contains("T1078 Valid Accounts (Defense Evasion)"),
        "{blocks}"
    );
    assert!(
        blocks
            .contains("<https://jaeger.example/trace/4bf92f3577b34da6a3ce929d0e0e4736|Open trace>"),
        "{blocks}"
    );
    let falco: Value = serde_json::from_str(&falco_log.lock()[0].body).unwrap();
    assert_eq!(falco["output_fields"]["eastwest.attack"], "T1078,T1036");
    assert_eq!(
        falco["output_fields"]["eastwest.trace_url"],
        "https://jaeger.example/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let tags: Vec<&str> = falco["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tag in ["T1078", "T1036", "mitre_defense_evasion"] {
        assert!(tags.contains(&tag), "{tags:?}");
    }
    assert_eq!(falco["priority"], "Critical");
    assert_eq!(falco["source"], "eastwest");
    assert_eq!(falco["output_fields"]["eastwest.alert_id"], "sf1");
    assert!(chrono::DateTime::parse_from_rfc3339(falco["time"].as_str().unwrap()).is_ok());
    cancel.cancel();
    worker.await.unwrap();
    s.stop().await;
}
