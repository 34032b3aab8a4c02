//! Webhooks against the real binary, where the other side is hostile.
//!
//! * A receiver that verifies the v1 signature as `docs/WEBHOOKS.md` says (in Rust here,
//!   and the document's Python verifier on the same requests) accepts a genuine delivery
//!   and refuses a replayed copy, a stale one, a tampered body and a swapped delivery id.
//! * A hook whose URL carries a secret path fails: the secret is nowhere in the dead
//!   letters API, the logs or the data dir.
//! * Workload names written by an attacker into telemetry reach Slack, a real
//!   Alertmanager and a Falcosidekick receiver as text: no markup, links or mentions.

mod otlp_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use eastwest_datasets::kv;
use hmac::{Hmac, Mac};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_support::*;
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;

const SEC: u64 = 1_000_000_000;
const SECRET: &str = "receiver-shared-secret";
/// How far a timestamp may be from the receiver's clock, and how long ids are kept.
const TOLERANCE_SECS: i64 = 300;

// ---------------------------------------------------------------------------------
// The reference receiver: verifies `X-Eastwest-Signature-V1` per docs/WEBHOOKS.md.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Malformed,
    BadSignature,
    Stale,
    Replay,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Signature first (constant time), then the timestamp window, then the ids seen
/// within it.
fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    seen: &mut HashMap<String, i64>,
    now: i64,
) -> Verdict {
    let delivery = header(headers, "x-eastwest-delivery");
    let stamp = header(headers, "x-eastwest-timestamp");
    let given = header(headers, "x-eastwest-signature-v1");
    let uuid_like =
        delivery.len() == 36 && delivery.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let Ok(timestamp) = stamp.parse::<i64>() else {
        return Verdict::Malformed;
    };
    let Some(given) = given.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()) else {
        return Verdict::Malformed;
    };
    if !uuid_like || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return Verdict::Malformed;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{stamp}.{delivery}.").as_bytes());
    mac.update(body);
    if mac.verify_slice(&given).is_err() {
        return Verdict::BadSignature;
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Verdict::Stale;
    }
    seen.retain(|_, t| (now - *t).abs() <= TOLERANCE_SECS);
    if seen.insert(delivery.to_string(), timestamp).is_some() {
        return Verdict::Replay;
    }
    Verdict::Ok
}

#[derive(Debug, Clone)]
struct Captured {
    headers: HeaderMap,
    body: Bytes,
    verdict: Option<Verdict>,
}

#[derive(Clone, Default)]
struct Receiver {
    /// `Some`: verify deliveries with this secret; `None`: record and accept.
    secret: Option<Vec<u8>>,
    /// Added to the wall clock (a receiver whose clock runs ahead).
    clock_skew: i64,
    seen: Arc<Mutex<HashMap<String, i64>>>,
    log: Arc<Mutex<Vec<Captured>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verdict = r.secret.as_ref().map(|secret| {
        let now = chrono::Utc::now().timestamp() + r.clock_skew;
        verify(secret, &headers, &body, &mut r.seen.lock(), now)
    });
    r.log.lock().push(Captured {
        headers,
        body,
        verdict,
    });
    match verdict {
        None | Some(Verdict::Ok) => StatusCode::OK,
        Some(Verdict::Replay) => StatusCode::CONFLICT,
        Some(_) => StatusCode::UNAUTHORIZED,
    }
}

/// Serves `receiver` on a free loopback port; returns its URL.
async fn start(receiver: Receiver) -> String {
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Sends a captured request again, optionally altered.
async fn resend(url: &str, headers: &HeaderMap, body: Bytes) -> u16 {
    let mut headers = headers.clone();
    headers.remove("host");
    headers.remove("content-length");
    reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_for<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `url` (JSON) until `pick` finds something in it.
async fn wait_for_json<T>(what: &str, url: &str, pick: impl Fn(&Value) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = get_json(url).await.unwrap();
        if let Some(v) = pick(&body) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------
// eastwest: started with a config file, its stderr kept for inspection.

struct Running {
    serving: Serving,
    data: tempfile::TempDir,
    log: PathBuf,
    _config_dir: tempfile::TempDir,
}

async fn serve_with_webhooks(webhooks_toml: &str) -> Running {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("eastwest.toml");
    std::fs::write(&config, webhooks_toml).unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = config_dir.path().join("stderr.log");
    for _ in 0..3 {
        let (grpc, http, api) = (free_addr(), free_addr(), free_addr());
        let mut cmd = Command::new(eastwest_bin());
        cmd.arg("serve")
            .args(["--otlp-grpc", &grpc.to_string()])
            .args(["--otlp-http", &http.to_string()])
            .args(["--api", &api.to_string()])
            .arg("--data-dir")
            .arg(data.path())
            .arg("--config")
            .arg(&config)
            .args(["--learning-period", "1h"])
            // Debug for the API crate: retries are logged at debug.
            .env("EASTWEST_LOG", "warn,eastwest_api=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = ChildGuard(cmd.spawn().unwrap());
        match wait_ready(api, &mut child).await {
            Ok(()) => {
                return Running {
                    serving: Serving {
                        child,
                        grpc,
                        http,
                        api,
                    },
                    data,
                    log,
                    _config_dir: config_dir,
                };
            }
            Err(StartError::Exited(_)) => continue,
            Err(StartError::Other(e)) => panic!("{e:#}"),
        }
    }
    panic!(
        "eastwest did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn resource(service: &str, namespace: &str, span: Span) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("k8s.namespace.name", namespace),
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

/// `from` CLIENT → `to` SERVER on `route`, trace `n`, at `start` (unix ns).
fn pair(n: u64, from: &str, to: &str, ns: &str, route: &str, start: u64) -> Vec<ResourceSpans> {
    let mut trace_id = vec![0u8; 16];
    trace_id[8..].copy_from_slice(&(n + 1).to_be_bytes());
    let span = |id: u8, parent: Option<u8>, kind: i32, attrs: Vec<KeyValue>| Span {
        trace_id: trace_id.clone(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("GET {route}"),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + SEC / 100,
        attributes: attrs,
        ..Default::default()
    };
    vec![
        resource(
            from,
            ns,
            span(
                1,
                None,
                3,
                vec![kv("http.request.method", "GET"), kv("server.address", to)],
            ),
        ),
        resource(
            to,
            ns,
            span(
                2,
                Some(1),
                2,
                vec![kv("http.request.method", "GET"), kv("http.route", route)],
            ),
        ),
    ]
}

async fn export(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    rs: Vec<ResourceSpans>,
) {
    let resp = client
        .export(ExportTraceServiceRequest { resource_spans: rs })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success.map_or(0, |p| p.rejected_spans), 0);
}

/// Learns `from → cart` (a source with a history, so its first call elsewhere scores),
/// ends learning, then sends one call `from → to` on `route` in namespace `ns`, and
/// returns the alert it raised (from the API).
async fn raise_alert(serving: &Serving, from: &str, to: &str, ns: &str, route: &str) -> Value {
    let mut client = TraceServiceClient::connect(format!("http://{}", serving.grpc))
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    let t0 = now - 10 * 60 * SEC;
    // 300 calls to one callee: a new callee is then surprising enough to alert.
    let normal: Vec<ResourceSpans> = (0..300)
        .flat_map(|i| pair(i, from, "cart", ns, "/items", t0 + i * SEC))
        .collect();
    for chunk in normal.chunks(100) {
        export(&mut client, chunk.to_vec()).await;
    }
    let api = format!("http://{}/api/v1", serving.api);
    let http = reqwest::Client::new();
    // Learning starts with the first call the engine sees.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let b = get_json(&format!("{api}/baseline")).await.unwrap();
        if b["learning_started"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "learning never started: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = http
        .post(format!("{api}/baseline/detect"))
        // The API's guard against cross-site POSTs from browsers.
        .header("X-Eastwest-Request", "1")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    export(&mut client, pair(1000, from, to, ns, route, t0 + 400 * SEC)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = get_json(&format!("{api}/alerts?kind=new_edge"))
            .await
            .unwrap();
        if let Some(a) = alerts["alerts"].as_array().unwrap().iter().find(|a| {
            a["source"]["service"]
                .as_str()
                .unwrap_or("")
                .contains("evil")
        }) {
            return a.clone();
        }
        if Instant::now() > deadline {
            let stats = get_json(&format!("{api}/stats")).await.unwrap();
            let baseline = get_json(&format!("{api}/baseline")).await.unwrap();
            let all = get_json(&format!("{api}/alerts")).await.unwrap();
            panic!("no new_edge alert from {from:?}: {all}\nstats {stats}\nbaseline {baseline}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

// ---------------------------------------------------------------------------------

/// The verifier in docs/WEBHOOKS.md (the ```python block), run on `requests` (headers,
/// body, receiver clock); returns its verdict for each, sharing one `seen` memory.
fn python_verdicts(requests: &[(&HeaderMap, &[u8], i64)]) -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/WEBHOOKS.md"))
            .unwrap();
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block in docs/WEBHOOKS.md");
    let cases: Vec<Value> = requests
        .iter()
        .map(|(headers, body, now)| {
            let headers: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), Value::from(v.to_str().unwrap())))
                .collect();
            serde_json::json!({"headers": headers, "body": hex::encode(body), "now": now})
        })
        .collect();
    let harness = format!(
        "{code}\nimport json, sys\nseen = {{}}\nprint(json.dumps([verify({SECRET:?}.encode(), c['headers'], bytes.fromhex(c['body']), seen, c['now']) for c in json.load(sys.stdin)]))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &harness])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    serde_json::to_writer(child.stdin.take().unwrap(), &cases).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_deliveries_verify_replays_are_refused_and_urls_stay_secret() {
    let receiver = Receiver {
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Default::default()
    };
    let log = receiver.log.clone();
    let url = start(receiver.clone()).await;
    // A Slack-style URL whose path is the credential, on a port nothing listens on.
    let token = "T0SECRET/B0SECRET/Zq8sLeakedTokenValue";
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead_url = format!("http://127.0.0.1:{closed}/services/{token}");
    let running = serve_with_webhooks(&format!(
        r#"
[[webhooks]]
name = "receiver"
kind = "generic"
url = "{url}"
secret = "{SECRET}"

[[webhooks]]
name = "slack-dead"
kind = "slack"
url = "{dead_url}"
max_attempts = 2
initial_backoff = "200ms"
max_backoff = "200ms"
"#
    ))
    .await;
    let mut serving = running.serving;
    let alert = raise_alert(&serving, "evil", "vault", "shop", "/secrets").await;

    // A genuine delivery verifies.
    let genuine = wait_for("a delivery", 30, || {
        log.lock()
            .iter()
            .find(|c| c.body.starts_with(b"{") && contains(&c.body, alert["id"].as_str().unwrap()))
            .cloned()
    })
    .await;
    assert_eq!(genuine.verdict, Some(Verdict::Ok), "{:?}", genuine.headers);
    let sent_at: i64 = header(&genuine.headers, "x-eastwest-timestamp")
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    // The deprecated body-only signature is still there, and still only the body's.
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&genuine.body);
    assert_eq!(
        header(&genuine.headers, "x-eastwest-signature"),
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );

    // A replayed copy, byte for byte, is refused.
    assert_eq!(
        resend(&url, &genuine.headers, genuine.body.clone()).await,
        409
    );
    // A tampered body is refused.
    let tampered = String::from_utf8(genuine.body.to_vec())
        .unwrap()
        .replace("\"evil\"", "\"good\"");
    assert_ne!(tampered.as_bytes(), &genuine.body[..]);
    assert_eq!(
        resend(&url, &genuine.headers, tampered.clone().into()).await,
        401
    );
    // So is the same request under another delivery id (the id is signed).
    let mut other_id = genuine.headers.clone();
    other_id.insert(
        "x-eastwest-delivery",
        "00000000-0000-7000-8000-000000000000".parse().unwrap(),
    );
    assert_eq!(resend(&url, &other_id, genuine.body.clone()).await, 401);
    // A receiver that has forgotten the id (or never saw it) still refuses the copy
    // once it is older than the tolerance: here, a receiver whose clock is 6 min ahead.
    let later = start(Receiver {
        secret: Some(SECRET.as_bytes().to_vec()),
        clock_skew: 6 * 60,
        ..Default::default()
    })
    .await;
    assert_eq!(
        resend(&later, &genuine.headers, genuine.body.clone()).await,
        401
    );
    let verdicts: Vec<Verdict> = log.lock().iter().filter_map(|c| c.verdict).collect();
    assert!(verdicts.contains(&Verdict::Replay) && verdicts.contains(&Verdict::BadSignature));

    // The verifier printed in docs/WEBHOOKS.md agrees on the same requests.
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        python_verdicts(&[
            (&genuine.headers, &genuine.body, now),
            (&genuine.headers, &genuine.body, now),
            (&genuine.headers, tampered.as_bytes(), now),
            (&other_id, &genuine.body, now),
            (&genuine.headers, &genuine.body, now + 6 * 60),
        ]),
        ["ok", "replay", "bad signature", "bad signature", "stale"]
    );

    // The failing hook's URL is a credential: it appears in no answer, log or file.
    let dead = wait_for_json(
        "the dead letter",
        &format!("http://{}/api/v1/webhooks/dead-letters", serving.api),
        |body| {
            body["dead_letters"]
                .as_array()?
                .iter()
                .find(|d| d["destination"] == "slack-dead")
                .map(|_| body.clone())
        },
    )
    .await;
    let text = dead.to_string();
    assert!(
        !text.contains("SECRET") && !text.contains("/services"),
        "{text}"
    );
    let row = dead["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "slack-dead")
        .unwrap();
    assert_eq!(row["attempts"], 2);
    assert!(
        row["target"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://127.0.0.1:{closed} (")),
        "{row}"
    );
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{row}"
    );

    stop_gracefully(&mut serving.child).unwrap();
    let stderr = std::fs::read_to_string(&running.log).unwrap();
    assert!(
        stderr.contains("slack-dead") && stderr.contains("webhook dead-lettered"),
        "the failures were logged: {stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");
    for file in files(running.data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, "SECRET") && !contains(&bytes, "LeakedToken"),
            "{} holds the webhook URL",
            file.display()
        );
    }
}

// ---------------------------------------------------------------------------------

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

async fn start_alertmanager(dir: &Path) -> (ChildGuard, String) {
    assert!(
        Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} is missing: install the Debian package prometheus-alertmanager \
         (scripts/prereqs.sh does)"
    );
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let addr: SocketAddr = free_addr();
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting alertmanager")
        .unwrap();
    let child = ChildGuard(child);
    let url = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/-/ready")).await
            && r.status().is_success()
        {
            return (child, url);
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hidden characters (controls, bidi, zero-width, tags) that must never reach a reader.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}')
}

/// Every Block Kit text object in `v`.
fn text_objects<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if matches!(
                m.get("type").and_then(Value::as_str),
                Some("mrkdwn" | "plain_text")
            ) {
                out.push(v);
            }
            m.values().for_each(|x| text_objects(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| text_objects(x, out)),
        _ => {}
    }
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_workload_names_reach_slack_alertmanager_and_falco_as_text() {
    let slack = Receiver::default();
    let falco = Receiver::default();
    let (slack_log, falco_log) = (slack.log.clone(), falco.log.clone());
    let slack_url = start(slack).await;
    let falco_url = start(falco).await;
    let am_dir = tempfile::tempdir().unwrap();
    let (_am, am_url) = start_alertmanager(am_dir.path()).await;
    let running = serve_with_webhooks(&format!(
        r#"
[[webhooks]]
name = "slack"
kind = "slack"
url = "{slack_url}"

[[webhooks]]
name = "am"
kind = "alertmanager"
url = "{am_url}"

[[webhooks]]
name = "falco"
kind = "falco"
url = "{falco_url}"
"#
    ))
    .await;
    let mut serving = running.serving;

    // Code-span breakout, bold/italic/strike, a mention, a disguised link, a bare URL, a
    // newline starting a quote and a right-to-left override.
    let source = "evil`*bold*_it_~s~<!channel>\u{202E}x";
    let destination = "<http://phish.example|login> http://bare.example";
    let namespace = "ns\n> quoted";
    let route = "/pay`code`<!here>";
    let alert = raise_alert(&serving, source, destination, namespace, route).await;
    let stored = alert["source"]["service"].as_str().unwrap();
    // The names reached the alert with their hostile characters (the test would prove
    // nothing if ingest had already cleaned them).
    assert!(
        stored.contains('`') && stored.contains("<!channel>"),
        "{alert}"
    );
    let id = alert["id"].as_str().unwrap().to_string();

    // Slack: the names are in plain_text objects, shown as typed except for `<>` and the
    // hidden character; mrkdwn objects carry none of them and set verbatim.
    let body = wait_for("the slack message", 30, || {
        slack_log
            .lock()
            .iter()
            .map(|c| String::from_utf8(c.body.to_vec()).unwrap())
            .find(|b| b.contains("evil"))
    })
    .await;
    assert!(
        !body.contains("<!channel>") && !body.contains("<!here>"),
        "{body}"
    );
    assert!(!body.contains("<http://phish"), "{body}");
    let message: Value = serde_json::from_str(&body).unwrap();
    let mut objects = Vec::new();
    text_objects(&message["blocks"], &mut objects);
    let call = objects
        .iter()
        .map(|o| (o["type"].as_str().unwrap(), o["text"].as_str().unwrap(), *o))
        .find(|(_, t, _)| t.starts_with("Call\n"))
        .expect("a call field");
    assert_eq!(call.0, "plain_text", "{}", call.2);
    assert_eq!(call.2["emoji"], false);
    assert!(
        call.1.contains("evil`*bold*_it_~s~‹!channel›\u{FFFD}x"),
        "{:?}",
        call.1
    );
    assert!(
        call.1
            .contains("‹http://phish.example|login› http://bare.example"),
        "{:?}",
        call.1
    );
    assert!(call.1.contains("/pay`code`‹!here›"), "{:?}", call.1);
    for (kind, text, object) in objects
        .iter()
        .map(|o| (o["type"].as_str().unwrap(), o["text"].as_str().unwrap(), *o))
    {
        if kind == "mrkdwn" {
            assert_eq!(object["verbatim"], true, "{object}");
            if text.starts_with('<') {
                assert!(text.ends_with("|Open in eastwest>"), "{text}");
            } else {
                assert!(!text.contains("evil") && !text.contains('`'), "{text}");
            }
        } else {
            let shown = text.split_once('\n').map_or(text, |(_, v)| v);
            assert!(!shown.chars().any(hidden), "{text:?}");
            assert!(!text.contains(['<', '>']), "{text:?}");
        }
    }
    // The notification text has no mrkdwn control character left.
    let fallback = message["text"].as_str().unwrap();
    assert!(
        fallback.contains("evilˋ∗bold∗ˍitˍ∼s∼&lt;!channel&gt;"),
        "{fallback}"
    );
    assert!(
        !fallback.contains(['<', '>', '`', '*', '_', '~']),
        "{fallback}"
    );
    assert!(!fallback.chars().any(hidden), "{fallback:?}");

    // Alertmanager (the real one) took the alert; its labels are visible, bounded text.
    let found = wait_for_json(
        "the alert in alertmanager",
        &format!("{am_url}/api/v2/alerts"),
        |alerts| {
            alerts
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alert_id"] == id.as_str())
                .cloned()
        },
    )
    .await;
    let labels = found["labels"].as_object().unwrap();
    assert_eq!(
        labels["source_service"], "evil`*bold*_it_~s~‹!channel›\u{FFFD}x",
        "{found}"
    );
    assert_eq!(
        labels["destination_service"],
        "‹http://phish.example|login› http://bare.example"
    );
    assert_eq!(labels["namespace"], "ns\u{FFFD}› quoted");
    let mut texts = Vec::new();
    strings(&found["labels"], &mut texts);
    strings(&found["annotations"], &mut texts);
    for t in texts {
        assert!(!t.chars().any(hidden) && !t.contains(['<', '>']), "{t:?}");
        assert!(t.chars().count() <= 2048);
    }

    // Falcosidekick: the same.
    let falco_body = wait_for("the falco event", 30, || {
        falco_log
            .lock()
            .iter()
            .map(|c| String::from_utf8(c.body.to_vec()).unwrap())
            .find(|b| b.contains("evil"))
    })
    .await;
    let event: Value = serde_json::from_str(&falco_body).unwrap();
    assert!(
        event["output"]
            .as_str()
            .unwrap()
            .contains("evil`*bold*_it_~s~‹!channel›\u{FFFD}x"),
        "{event}"
    );
    let mut texts = Vec::new();
    strings(&event, &mut texts);
    for t in texts {
        assert!(!t.chars().any(hidden) && !t.contains(['<', '>']), "{t:?}");
    }

    stop_gracefully(&mut serving.child).unwrap();
}
