//! Public datasets end to end: `eastwest convert` (Nezha CSV, Zipkin v2 JSON) →
//! `eastwest replay` → a real `eastwest serve` → `GET /api/v1/graph`. The expected nodes
//! and edges are computed here from the raw input files, independently of the converter
//! and the collector.
//!
//! * Nezha Online Boutique, `17_00_trace.csv` (fault-free): an edge per distinct
//!   (parent span's service, child span's service) join across services; SOURCE.txt's
//!   10 services.
//! * Zipkin SmartThings `mobile-web-install` (1,041 spans, SOURCE.txt's 16 services): a
//!   call edge per SERVER span and the CLIENT span it answers (same id — Zipkin's shared
//!   span — or its parent), and for a CLIENT span nobody answered, an edge to its remote
//!   endpoint's service (the collector's virtual peer).

mod otlp_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use otlp_support::*;
use serde_json::Value;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .join(rel)
}

type Pairs = BTreeSet<(String, String)>;

/// (parent service, child service) for every span whose parent lives in another service.
fn nezha_pairs(csv: &Path) -> (BTreeSet<String>, Pairs) {
    let text = std::fs::read_to_string(csv).unwrap();
    let service = |pod: &str| -> String {
        // `cartservice-7d9f8c-abc12` → `cartservice`.
        let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
        if parts.len() == 3 { parts[2] } else { pod }.to_string()
    };
    let mut by_id: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut rows = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let (trace, id, parent, svc) = (f[0], f[1], f[2], service(f[3]));
        by_id.insert((trace.into(), id.into()), svc.clone());
        rows.push((trace.to_string(), parent.to_string(), svc));
    }
    let mut services = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    for (trace, parent, svc) in rows {
        services.insert(svc.clone());
        if let Some(ps) = by_id.get(&(trace, parent))
            && *ps != svc
        {
            pairs.insert((ps.clone(), svc));
        }
    }
    (services, pairs)
}

/// (services, call edges, edges from unknown callers). The last are SERVER spans under
/// another service's SERVER span (that caller's CLIENT span was never reported).
fn zipkin_pairs(json: &Path) -> (BTreeSet<String>, Pairs, Pairs) {
    let spans: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let svc = |s: &Value| {
        s["localEndpoint"]["serviceName"]
            .as_str()
            .unwrap_or("unknown")
            .to_string()
    };
    let kind = |s: &Value| s["kind"].as_str().unwrap_or("").to_string();
    let services: BTreeSet<String> = spans.iter().map(svc).collect();
    let mut pairs = BTreeSet::new();
    let mut answered: BTreeSet<usize> = BTreeSet::new();
    for server in spans.iter().filter(|s| kind(s) == "SERVER") {
        // The shared CLIENT half (same id), else the CLIENT parent.
        let client = spans
            .iter()
            .position(|c| kind(c) == "CLIENT" && c["id"] == server["id"])
            .or_else(|| {
                spans.iter().position(|c| {
                    kind(c) == "CLIENT"
                        && server["parentId"].is_string()
                        && c["id"] == server["parentId"]
                })
            });
        // A service calling itself (another instance) is a call too.
        if let Some(i) = client {
            answered.insert(i);
            pairs.insert((svc(&spans[i]), svc(server)));
        }
    }
    for (i, c) in spans.iter().enumerate() {
        if kind(c) != "CLIENT" || answered.contains(&i) {
            continue;
        }
        // Unanswered: the remote endpoint's service (Zipkin's database instrumentation
        // may name it after the caller itself), else the URL's host, else nobody knows.
        let peer = c["remoteEndpoint"]["serviceName"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                c["tags"]["http.url"].as_str().map(|u| {
                    let rest = u.split_once("://").map_or(u, |(_, r)| r);
                    rest.split(['/', ':']).next().unwrap_or("").to_string()
                })
            })
            .unwrap_or_else(|| "unknown".into());
        pairs.insert((svc(c), peer));
    }
    // A SERVER span under another service's SERVER span (that caller's CLIENT span was
    // never reported): a call from an unknown caller.
    let mut unknown_callers = BTreeSet::new();
    for server in spans.iter().filter(|s| kind(s) == "SERVER") {
        let parent_kinds: Vec<(String, String)> = spans
            .iter()
            .filter(|p| server["parentId"].is_string() && p["id"] == server["parentId"])
            .map(|p| (svc(p), kind(p)))
            .collect();
        let shared_client = spans
            .iter()
            .any(|c| kind(c) == "CLIENT" && c["id"] == server["id"]);
        if !shared_client
            && !parent_kinds.iter().any(|(_, k)| k == "CLIENT")
            && parent_kinds.iter().any(|(s, _)| *s != svc(server))
        {
            unknown_callers.insert(("unknown".into(), svc(server)));
        }
    }
    (services, pairs, unknown_callers)
}

fn run(args: &[&str]) {
    let out = Command::new(eastwest_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "eastwest {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Converts, replays into a fresh `serve`, and waits (at most 60 s) until `done` says
/// the graph's edges are complete.
async fn convert_and_replay(
    format: &str,
    input: &Path,
    done: impl Fn(&Pairs) -> bool,
) -> (usize, Pairs) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("converted");
    run(&[
        "convert",
        format,
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let eastwest = Eastwest::start().await.unwrap();
    let to = format!("http://{}", eastwest.grpc);
    let out_s = out.to_str().unwrap().to_string();
    tokio::task::spawn_blocking(move || run(&["replay", &out_s, "--to", &to, "--quiet"]))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let graph = get_json(&eastwest.api_url("/api/v1/graph")).await.unwrap();
        let edges: Pairs = graph["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["source"].as_str().unwrap().to_string(),
                    e["destination"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let nodes = graph["nodes"].as_array().unwrap().len();
        if done(&edges) || Instant::now() > deadline {
            return (nodes, edges);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn nezha_online_boutique_replays_into_its_ten_service_graph() {
    let csv = shared("nezha-onlineboutique/construct_data/2022-08-23/trace/17_00_trace.csv");
    let (services, want) = nezha_pairs(&csv);
    assert_eq!(services.len(), 10, "SOURCE.txt: 10 services");
    let (nodes, edges) = convert_and_replay("nezha", &csv, |e| *e == want).await;
    assert_eq!(edges, want, "graph edges vs the raw span→parent joins");
    let endpoints: BTreeSet<&String> = want.iter().flat_map(|(a, b)| [a, b]).collect();
    assert_eq!(nodes, endpoints.len());
    assert_eq!(nodes, 10, "every service takes part in a call");
}

#[tokio::test]
async fn zipkin_smartthings_replays_into_its_sixteen_service_graph() {
    let json =
        shared("zipkin-lens-testdata/zipkin-lens/testdata/smartthings-mobile-web-install.json");
    let (services, calls, unknown_callers) = zipkin_pairs(&json);
    assert_eq!(services.len(), 16, "SOURCE.txt: 16 services");
    // Unknown-caller edges appear once the pairing TTL passed (idle watermark).
    let (nodes, edges) = convert_and_replay("zipkin", &json, |e| {
        calls.is_subset(e) && e.iter().any(|p| unknown_callers.contains(p))
    })
    .await;
    // Every call edge is there, and nothing else but unknown-caller edges.
    assert!(
        calls.is_subset(&edges),
        "missing: {:?}",
        calls.difference(&edges).collect::<Vec<_>>()
    );
    let extra: Pairs = edges.difference(&calls).cloned().collect();
    assert!(
        extra.is_subset(&unknown_callers),
        "unexpected: {:?}",
        extra.difference(&unknown_callers).collect::<Vec<_>>()
    );
    // The collector takes a SERVER span under a SERVER span for the app layer behind a
    // sidecar (no call) while the parent's marker lives, even across services: of the
    // two such spans here (stLogin under strongman, strongman under stLogin) only the
    // latter becomes `unknown → strongman`. Known and reported; counted, not hidden.
    assert!(!extra.is_empty() && extra.len() <= unknown_callers.len());
    let endpoints: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    assert_eq!(nodes, endpoints.len());
    let real: BTreeSet<&String> = calls
        .iter()
        .flat_map(|(a, b)| [a, b])
        .filter(|s| services.contains(*s))
        .collect();
    assert_eq!(real.len(), 16, "every service of SOURCE.txt is in a call");
}
