//! One runtime, one clock: what `eval` reports is what the real `serve` binary does, and
//! what it does depends on the telemetry alone — not on the transport, encoding, request
//! size, stream count, pace or arrival order (within the allowed lateness).
//!
//! Every run ends with a graceful stop (SIGTERM), which drains the pipeline exactly as
//! `eval` does at the end of its input; the alerts are then read from the stopped
//! server's alert store and the call count from its Parquet history.

mod otlp_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use eastwest_api::AlertStore;
use eastwest_api::store::{AlertFilter, Cursor, MAX_PAGE};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use otlp_support::*;
use prost::Message;
use serde_json::Value;

/// Short scenarios: the suite's shapes with 20 minutes of learning and 10 of attack.
const SMALL: &[&str] = &["--learning", "20m", "--attack", "10m"];
const DAY_NS: i64 = 86_400_000_000_000;

/// An alert's outcome by id: kind, severity, count, first and last seen as time of day
/// (runs may move a scenario by different whole days).
type Outcome = BTreeMap<String, (String, String, u64, i64, i64)>;

fn time_of_day(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
        .rem_euclid(DAY_NS)
}

fn outcome_of(
    alerts: impl IntoIterator<Item = (String, String, String, u64, String, String)>,
) -> Outcome {
    alerts
        .into_iter()
        .map(|(id, kind, severity, count, first, last)| {
            (
                id,
                (
                    kind,
                    severity,
                    count,
                    time_of_day(&first),
                    time_of_day(&last),
                ),
            )
        })
        .collect()
}

struct Run {
    alerts: Outcome,
    calls: u64,
}

/// `eastwest eval DIR --json`: the alerts it raised and the calls it judged.
fn eval_run(dir: &Path) -> Run {
    let out = Command::new(eastwest_bin())
        .args(["eval", "--json"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let alerts = report["alerts_raised"].as_array().unwrap().iter().map(|a| {
        let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
        (
            s("id"),
            s("kind"),
            s("severity"),
            a["count"].as_u64().unwrap(),
            s("first_seen"),
            s("last_seen"),
        )
    });
    Run {
        alerts: outcome_of(alerts),
        calls: report["calls"].as_u64().unwrap(),
    }
}

fn learning_period(dir: &Path) -> String {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("scenario.json")).unwrap()).unwrap();
    meta["learning_period"].as_str().unwrap().to_string()
}

/// Starts `serve` with the scenario's learning period, lets `feed` send to it, stops it
/// gracefully and reads what it stored.
async fn serve_run(dir: &Path, feed: impl AsyncFnOnce(&Serving)) -> anyhow::Result<Run> {
    let data = tempfile::tempdir()?;
    let period = learning_period(dir);
    let mut serving = serve_on_free_ports(data.path(), &["--learning-period", &period]).await?;
    feed(&serving).await;
    stop_gracefully(&mut serving.child)?;
    let store = AlertStore::open(data.path())?;
    let mut alerts = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_alerts(&AlertFilter {
            limit: MAX_PAGE,
            before: before.clone(),
            ..Default::default()
        })?;
        alerts.extend(page.alerts);
        match page.next {
            Some(next) => before = Some(Cursor::parse(&next)?),
            None => break,
        }
    }
    let alerts = alerts.into_iter().map(|a| {
        (
            a.id.clone(),
            a.kind.as_str().to_string(),
            a.severity.as_str().to_string(),
            a.count,
            a.first_seen.to_rfc3339(),
            a.last_seen.to_rfc3339(),
        )
    });
    Ok(Run {
        alerts: outcome_of(alerts),
        calls: history_calls(data.path()),
    })
}

enum Transport {
    Grpc,
    Http,
}

/// `serve_run` fed by `eastwest replay FILES` over `transport` with `extra` flags.
async fn replay_run(dir: &Path, files: &Path, transport: Transport, extra: &[&str]) -> Run {
    serve_run(dir, async |s| {
        let to = match transport {
            Transport::Grpc => format!("http://{}", s.grpc),
            Transport::Http => format!("http://{}/v1/traces", s.http),
        };
        replay(&[files], &to, extra);
    })
    .await
    .unwrap()
}

/// Rows in the stopped server's call history.
fn history_calls(data_dir: &Path) -> u64 {
    let out = Command::new(eastwest_bin())
        .args(["sql", "--data-dir"])
        .arg(data_dir)
        .arg("SELECT count(*) AS n FROM calls")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_matches('|').trim().parse::<u64>().ok())
        .next()
        .expect("a count row")
}

fn replay(paths: &[&Path], to: &str, extra: &[&str]) {
    let out = Command::new(eastwest_bin())
        .arg("replay")
        .args(paths)
        .args(["--to", to, "--quiet"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(", 0 refused by the receiver"), "{stderr}");
}

fn traces(dir: &Path) -> Vec<ExportTraceServiceRequest> {
    eastwest_datasets::read_otlp_file(&dir.join("traces.pb")).unwrap()
}

/// Writes requests as a scenario-like directory `replay` reads.
fn write_traces(requests: &[ExportTraceServiceRequest]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut buf = Vec::new();
    for r in requests {
        r.encode_length_delimited(&mut buf).unwrap();
    }
    std::fs::write(dir.path().join("traces.pb"), buf).unwrap();
    dir
}

/// Every span as its own entry (resource and scope kept), in file order.
fn single_spans(requests: &[ExportTraceServiceRequest]) -> Vec<(i64, ResourceSpans)> {
    let mut out = Vec::new();
    for rs in requests.iter().flat_map(|r| &r.resource_spans) {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push((
                    span.start_time_unix_nano as i64,
                    ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: vec![span.clone()],
                            schema_url: ss.schema_url.clone(),
                        }],
                        schema_url: rs.schema_url.clone(),
                    },
                ));
            }
        }
    }
    out
}

/// One request per minute of event time (by span start).
fn per_minute(requests: &[ExportTraceServiceRequest]) -> Vec<ExportTraceServiceRequest> {
    let mut minutes: BTreeMap<i64, Vec<ResourceSpans>> = BTreeMap::new();
    for (t, rs) in single_spans(requests) {
        minutes
            .entry(t.div_euclid(60_000_000_000))
            .or_default()
            .push(rs);
    }
    minutes
        .into_values()
        .map(|resource_spans| ExportTraceServiceRequest { resource_spans })
        .collect()
}

fn assert_same(what: &str, scenario: &str, expected: &Run, got: &Run) {
    assert_eq!(
        expected.calls, got.calls,
        "{scenario}: {what}: call count differs"
    );
    let only_expected: Vec<_> = expected
        .alerts
        .iter()
        .filter(|(k, v)| got.alerts.get(*k) != Some(*v))
        .collect();
    let only_got: Vec<_> = got
        .alerts
        .iter()
        .filter(|(k, v)| expected.alerts.get(*k) != Some(*v))
        .collect();
    assert!(
        only_expected.is_empty() && only_got.is_empty(),
        "{scenario}: {what}: alerts differ\nonly in the reference: {only_expected:#?}\nonly here: {only_got:#?}"
    );
}

/// Every built-in scenario of both meshes: `eval`, a full-speed gRPC replay into the real
/// binary and an HTTP replay in one request per minute of event
/// time raise the same alerts (key, kind, severity, count, first and last seen) from
/// the same number of calls.
#[tokio::test(flavor = "multi_thread")]
async fn eval_and_the_real_server_agree_on_every_scenario_over_both_transports() {
    for topology in ["boutique", "trainticket"] {
        let mut compared = 0;
        let mut attack_alerts = 0;
        for scenario in scenario_list() {
            let mut args = SMALL.to_vec();
            args.extend(["--topology", topology]);
            let Some(dir) = try_generate(&scenario, &args) else {
                continue;
            };
            let name = format!("{topology}/{scenario}");
            let reference = eval_run(dir.path());
            let grpc = replay_run(dir.path(), dir.path(), Transport::Grpc, &[]).await;
            assert_same("gRPC, full speed", &name, &reference, &grpc);
            let minutes = write_traces(&per_minute(&traces(dir.path())));
            let http = replay_run(
                dir.path(),
                minutes.path(),
                Transport::Http,
                &["--in-flight", "1"],
            )
            .await;
            assert_same("HTTP, a request per minute", &name, &reference, &http);
            compared += 1;
            if !scenario.starts_with("benign") {
                attack_alerts += reference.alerts.len();
            }
        }
        assert!(compared >= 10, "{topology}: only {compared} scenarios ran");
        assert!(
            attack_alerts > 0,
            "{topology}: the attack scenarios raised nothing"
        );
    }
}

/// One scenario with windowed detectors, fed five ways: as generated over gRPC; one span
/// per request over 8 streams; a request per five minutes as OTLP/JSON over HTTP;
/// shuffled within the allowed lateness; paced (event time 120× wall time).
#[tokio::test(flavor = "multi_thread")]
async fn request_size_streams_order_encoding_and_pace_do_not_change_the_outcome() {
    let dir = try_generate("fan-out", SMALL).expect("fan-out exists on boutique");
    let requests = traces(dir.path());
    let reference = replay_run(dir.path(), dir.path(), Transport::Grpc, &[]).await;
    assert!(
        reference.alerts.values().any(|a| a.0 == "fan_out"),
        "the scenario's fan-out must be found: {:#?}",
        reference.alerts
    );

    // A client sends spans about in the order they happen; the files group them by
    // resource, so single spans go out in start order (stable).
    let mut spans = single_spans(&requests);
    spans.sort_by_key(|(t, _)| *t);
    let one_each: Vec<ExportTraceServiceRequest> = spans
        .iter()
        .map(|(_, rs)| ExportTraceServiceRequest {
            resource_spans: vec![rs.clone()],
        })
        .collect();
    let singles = write_traces(&one_each);
    let got = replay_run(
        dir.path(),
        singles.path(),
        Transport::Grpc,
        &["--in-flight", "8"],
    )
    .await;
    assert_same(
        "one span per request, 8 streams",
        "fan-out",
        &reference,
        &got,
    );

    // Shuffled: spans less than a second apart swap places (the lateness is 2 s).
    let mut shuffled = one_each.clone();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut block_start = 0;
    for i in 1..=spans.len() {
        if i == spans.len() || spans[i].0 - spans[block_start].0 > 1_000_000_000 {
            for j in (block_start + 1..i).rev() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let k = block_start + (rng % (j - block_start + 1) as u64) as usize;
                shuffled.swap(j, k);
            }
            block_start = i;
        }
    }
    assert_ne!(shuffled, one_each);
    let shuffled_dir = write_traces(&shuffled);
    let got = replay_run(
        dir.path(),
        shuffled_dir.path(),
        Transport::Grpc,
        &["--in-flight", "1"],
    )
    .await;
    assert_same("shuffled within the lateness", "fan-out", &reference, &got);

    let mut five_minutes: BTreeMap<i64, Vec<ResourceSpans>> = BTreeMap::new();
    for (t, rs) in spans {
        five_minutes
            .entry(t.div_euclid(300_000_000_000))
            .or_default()
            .push(rs);
    }
    let mut pieces: Vec<ExportTraceServiceRequest> = five_minutes
        .into_values()
        .map(|resource_spans| ExportTraceServiceRequest { resource_spans })
        .collect();
    // By the same whole days `replay` moves the scenario.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    eastwest_datasets::retime_requests(&mut pieces, &mut [], now);
    let json_requests: Vec<Vec<u8>> = pieces
        .iter()
        .map(|req| serde_json::to_vec(req).unwrap())
        .collect();
    let got = serve_run(dir.path(), async |s| {
        let url = format!("http://{}/v1/traces", s.http);
        let client = reqwest::Client::new();
        for body in &json_requests {
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
        }
    })
    .await
    .unwrap();
    assert_same(
        "OTLP/JSON over HTTP, five minutes per request",
        "fan-out",
        &reference,
        &got,
    );

    let got = replay_run(dir.path(), dir.path(), Transport::Grpc, &["--speed", "120"]).await;
    assert_same("paced at 120× event time", "fan-out", &reference, &got);
}

fn scenario_list() -> Vec<String> {
    let out = Command::new(eastwest_bin())
        .args(["gen", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn per_minute_pieces_keep_every_span() {
    let dir = try_generate("admin-endpoint", SMALL).unwrap();
    let requests = traces(dir.path());
    let pieces = per_minute(&requests);
    let count = |rs: &[ExportTraceServiceRequest]| -> usize {
        rs.iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    };
    assert_eq!(count(&requests), count(&pieces));
    assert!(pieces.len() >= 30, "{} pieces", pieces.len());
}
