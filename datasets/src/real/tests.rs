//! The suite builder on a small synthetic Nezha folder (same shapes as the recorded
//! Online Boutique spans) and, when the shared dataset is present, on the real one.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use eastwest_model::AlertKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use super::*;
use crate::otlp::{attr, spans_with_service};

const SEC: u64 = 1_000_000_000;

/// Minute files of one day: `(HH, MM)`; one request per second, each through every
/// edge the injections need.
fn synthetic(dir: &Path, minutes: &[(u32, u32)]) {
    let trace_dir = dir.join("rca_data/2022-08-22/trace");
    std::fs::create_dir_all(&trace_dir).unwrap();
    let mut n = 0u64;
    for (h, m) in minutes {
        let mut csv = String::from(
            "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n",
        );
        let base = 1_661_126_400 * SEC + u64::from(h * 3600 + m * 60) * SEC;
        for s in 0..60u64 {
            n += 1;
            let t = base + s * SEC;
            let trace = format!("{n:032x}");
            let mut id = 0u64;
            let mut span = |csv: &mut String, parent: &str, pod: &str, op: &str, at: u64| {
                id += 1;
                let sid = format!("{:016x}", n * 100 + id);
                writeln!(
                    csv,
                    "{trace},{sid},{parent},{pod},{op},{},{},1000000",
                    t + at,
                    t + at + 1_000_000
                )
                .unwrap();
                sid
            };
            let fe = "frontend-579b9bff58-t2dbm";
            let root = span(&mut csv, "root", fe, "hipstershop.Frontend/Recv.", 0);
            let c = span(
                &mut csv,
                &root,
                fe,
                "hipstershop.RecommendationService/ListRecommendations",
                10,
            );
            let rs = span(
                &mut csv,
                &c,
                "recommendationservice-6cfdd55578-gfj6q",
                "/hipstershop.RecommendationService/ListRecommendations",
                20,
            );
            let rc = span(
                &mut csv,
                &rs,
                "recommendationservice-6cfdd55578-gfj6q",
                "/hipstershop.ProductCatalogService/ListProducts",
                30,
            );
            span(
                &mut csv,
                &rc,
                "productcatalogservice-668d5f85fb-wckp8",
                "hipstershop.ProductCatalogService/ListProducts",
                40,
            );
            let c = span(&mut csv, &root, fe, "hipstershop.CartService/GetCart", 50);
            span(
                &mut csv,
                &c,
                "cartservice-579f59597d-wc2lz",
                "hipstershop.CartService/GetCart",
                60,
            );
            let c = span(
                &mut csv,
                &root,
                fe,
                "hipstershop.CheckoutService/PlaceOrder",
                70,
            );
            let cs = span(
                &mut csv,
                &c,
                "checkoutservice-578fcf4766-9csqn",
                "hipstershop.CheckoutService/PlaceOrder",
                80,
            );
            let pc = span(
                &mut csv,
                &cs,
                "checkoutservice-578fcf4766-9csqn",
                "hipstershop.PaymentService/Charge",
                90,
            );
            span(
                &mut csv,
                &pc,
                "paymentservice-9cdb6588f-554sm",
                "grpc.hipstershop.PaymentService/Charge",
                100,
            );
            let sc = span(
                &mut csv,
                &cs,
                "checkoutservice-578fcf4766-9csqn",
                "hipstershop.ShippingService/GetQuote",
                110,
            );
            span(
                &mut csv,
                &sc,
                "shippingservice-7b598fc7d-lmggd",
                "hipstershop.ShippingService/GetQuote",
                120,
            );
            let ec = span(
                &mut csv,
                &cs,
                "checkoutservice-578fcf4766-9csqn",
                "hipstershop.EmailService/SendOrderConfirmation",
                130,
            );
            span(
                &mut csv,
                &ec,
                "emailservice-55fdc5b988-f6xth",
                "/hipstershop.EmailService/SendOrderConfirmation",
                140,
            );
            let c = span(
                &mut csv,
                &root,
                fe,
                "hipstershop.CurrencyService/Convert",
                150,
            );
            span(
                &mut csv,
                &c,
                "currencyservice-cf787dd48-vpjrd",
                "grpc.hipstershop.CurrencyService/Convert",
                160,
            );
            let c = span(&mut csv, &root, fe, "hipstershop.AdService/GetAds", 170);
            span(
                &mut csv,
                &c,
                "adservice-5f6585d649-fnmft",
                "hipstershop.AdService/GetAds",
                180,
            );
        }
        std::fs::write(trace_dir.join(format!("{h:02}_{m:02}_trace.csv")), csv).unwrap();
    }
    std::fs::write(
        dir.join("rca_data/2022-08-22/2022-08-22-fault_list.json"),
        r#"{"04":[{"inject_time":"2022-08-22 04:20:30","inject_timestamp":"1661142030","inject_pod":"cartservice-579f59597d-wc2lz","inject_type":"network_delay"}]}"#,
    )
    .unwrap();
}

fn suite() -> (tempfile::TempDir, RealSuite) {
    let dir = tempfile::tempdir().unwrap();
    let minutes: Vec<(u32, u32)> = [0, 1, 2, 10, 11, 12, 20, 21, 22]
        .iter()
        .map(|m| (4, *m))
        .collect();
    synthetic(dir.path(), &minutes);
    let suite = nezha_suite(dir.path(), &RealOptions::default()).unwrap();
    (dir, suite)
}

fn all_spans(suite: &RealSuite) -> Vec<(String, String, Span)> {
    let mut out = Vec::new();
    for req in &suite.data.traces {
        for rs in &req.resource_spans {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            let svc = attr(attrs, "service.name").unwrap().to_string();
            let pod = attr(attrs, "k8s.pod.name").unwrap().to_string();
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                out.push((svc.clone(), pod.clone(), s.clone()));
            }
        }
    }
    out
}

#[test]
fn windows_are_laid_end_to_end_and_keep_their_faults() {
    let (_dir, suite) = suite();
    assert_eq!(suite.windows.len(), 3);
    for pair in suite.windows.windows(2) {
        let gap = pair[1].start_ns - pair[0].end_ns;
        assert_eq!(gap, 10_000_000_000, "{pair:?}");
    }
    assert_eq!(
        suite.windows[0].shift_ns, 0,
        "the first window keeps its time"
    );
    assert_eq!(suite.windows[2].faults.len(), 1, "{:?}", suite.windows);
    assert_eq!(suite.windows[2].faults[0].kind, "network_delay");
    let t = suite.windows[1].start_ns + 1;
    assert_eq!(suite.window_at(t), Some(&suite.windows[1]));
    // Learning is the first 40 % of the timeline.
    let meta = &suite.data.meta;
    let total = suite.windows[2].end_ns - suite.windows[0].start_ns;
    let learning = humantime::parse_duration(&meta.learning_period).unwrap();
    assert!(
        (learning.as_nanos() as f64 / total as f64 - 0.4).abs() < 0.01,
        "{learning:?} of {total}"
    );
}

#[test]
fn every_planned_injection_has_a_label_inside_the_detection_part() {
    let (_dir, suite) = suite();
    let labels = &suite.data.labels;
    let names: Vec<&str> = labels.iter().map(|l| l.scenario.as_str()).collect();
    assert_eq!(names, PLAN.to_vec());
    let detect = suite.data.meta.attack_start;
    for l in labels {
        assert!(l.start >= detect && l.end >= l.start, "{l:?}");
        assert_eq!(l.class == "attack", l.kind.is_some(), "{l:?}");
    }
    let kind = |name: &str| labels.iter().find(|l| l.scenario == name).unwrap().kind;
    assert_eq!(kind("probing"), Some(AlertKind::Probing));
    assert_eq!(kind("bulk-read"), Some(AlertKind::RateSpike));
    assert_eq!(kind("benign-surge"), None);
    // Attack labels do not overlap for the same source (one alert cannot serve two).
    for a in labels.iter().filter(|l| l.kind.is_some()) {
        for b in labels
            .iter()
            .filter(|l| l.kind.is_some() && l.scenario != a.scenario)
        {
            if a.source == b.source {
                assert!(a.end < b.start || b.end < a.start, "{a:?} {b:?}");
            }
        }
    }
}

#[test]
fn injected_calls_look_like_the_recorded_ones() {
    let (_dir, suite) = suite();
    let spans = all_spans(&suite);
    let pods: BTreeSet<&str> = spans.iter().map(|(_, p, _)| p.as_str()).collect();
    // The only pod not in the recording is the restarted cart service's.
    let recorded = [
        "579b9bff58",
        "6cfdd55578",
        "668d5f85fb",
        "579f59597d",
        "578fcf4766",
        "9cdb6588f",
        "7b598fc7d",
        "55fdc5b988",
        "cf787dd48",
        "5f6585d649",
    ];
    let new: Vec<&&str> = pods
        .iter()
        .filter(|p| !recorded.iter().any(|hash| p.contains(&format!("-{hash}-"))))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].starts_with("cartservice-"));

    // The recommendation service names its calls like a path; cart's GetCart has
    // no prefix on its server side; the payment service prefixes `grpc.`.
    let names = |svc: &str| -> BTreeSet<String> {
        spans
            .iter()
            .filter(|(s, _, _)| s == svc)
            .map(|(_, _, sp)| sp.name.clone())
            .collect()
    };
    assert!(names("recommendationservice").contains("/hipstershop.CartService/GetCart"));
    assert!(names("cartservice").contains("hipstershop.CartService/GetCart"));
    assert!(names("paymentservice").contains("grpc.hipstershop.PaymentService/Refund"));
    assert!(names("cartservice").contains(inject::REFLECTION));

    // Probes fail as a gRPC server does for a method it lacks.
    let probes: Vec<&Span> = spans
        .iter()
        .map(|(_, _, s)| s)
        .filter(|s| s.name.ends_with("PaymentService/Refund"))
        .collect();
    assert_eq!(probes.len(), 2, "client and server side");
    for p in probes {
        assert_eq!(p.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert!(p.attributes.iter().any(|a| a.key == "rpc.grpc.status_code"));
    }
}

#[test]
fn context_requests_enter_at_the_service_and_bulk_reads_repeat_the_call() {
    let (_dir, suite) = suite();
    let spans = all_spans(&suite);
    let roots: HashMap<&str, usize> = spans
        .iter()
        .filter(|(_, _, s)| s.parent_span_id.is_empty())
        .fold(HashMap::new(), |mut m, (svc, _, _)| {
            *m.entry(svc.as_str()).or_default() += 1;
            m
        });
    assert_eq!(roots.get("recommendationservice"), Some(&3), "{roots:?}");
    let label = |name: &str| {
        suite
            .data
            .labels
            .iter()
            .find(|l| l.scenario == name)
            .unwrap()
    };
    let bulk = label("bulk-read");
    let in_bulk = |s: &Span| {
        let t = s.start_time_unix_nano as i64;
        t >= bulk.start.timestamp_nanos_opt().unwrap()
            && t <= bulk.end.timestamp_nanos_opt().unwrap()
    };
    let per_trace = spans
        .iter()
        .filter(|(svc, _, s)| svc == "productcatalogservice" && in_bulk(s))
        .fold(HashMap::<&[u8], usize>::new(), |mut m, (_, _, s)| {
            *m.entry(s.trace_id.as_slice()).or_default() += 1;
            m
        });
    assert!(!per_trace.is_empty());
    assert!(per_trace.values().any(|n| *n == 21), "{per_trace:?}");
}

#[test]
fn the_surge_repeats_requests_unevenly_about_four_times() {
    let (_dir, suite) = suite();
    let (before, after) = suite.surge_requests;
    assert!(before > 0);
    // Every synthetic request places an order: ×2 for that page.
    assert_eq!(after, before * 2);
    assert_eq!(
        benign::surge_factor(&["hipstershop.CartService/AddItem"]),
        5
    );
    assert_eq!(
        benign::surge_factor(&["hipstershop.ShippingService/GetQuote"]),
        6
    );
    assert_eq!(benign::surge_factor(&[]), 4);
    // New trace ids: spans of one trace are never duplicated.
    let spans = all_spans(&suite);
    let ids: BTreeSet<(&[u8], &[u8])> = spans
        .iter()
        .map(|(_, _, s)| (s.trace_id.as_slice(), s.span_id.as_slice()))
        .collect();
    assert_eq!(ids.len(), spans.len());
}

#[test]
fn the_same_seed_builds_the_same_suite() {
    let (dir, a) = suite();
    let b = nezha_suite(dir.path(), &RealOptions::default()).unwrap();
    assert_eq!(a.data.traces, b.data.traces);
    assert_eq!(a.data.labels, b.data.labels);
    let opts = RealOptions {
        learning_share: 0.95,
        ..Default::default()
    };
    assert!(nezha_suite(dir.path(), &opts).is_err());
}

fn shared_nezha() -> Option<PathBuf> {
    [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"),
        PathBuf::from("/tmp/shared/datasets"),
    ]
    .into_iter()
    .map(|p| p.join("nezha-onlineboutique"))
    .find(|p| p.is_dir())
}

#[test]
fn on_the_recorded_traces_the_surge_is_about_four_fold() {
    let Some(dir) = shared_nezha() else {
        eprintln!("skipped: the shared nezha-onlineboutique dataset is not present");
        return;
    };
    let suite = nezha_suite(
        &dir,
        &RealOptions {
            max_files: Some(6),
            ..Default::default()
        },
    )
    .unwrap();
    let (before, after) = suite.surge_requests;
    let factor = after as f64 / before as f64;
    // ×4.0 on the whole recording's mix of pages; a few minutes vary around it.
    assert!(
        (3.0..=5.0).contains(&factor),
        "×{factor:.2} ({before} → {after})"
    );
    assert_eq!(suite.data.labels.len(), PLAN.len());
    let services: BTreeSet<&str> = suite
        .data
        .traces
        .iter()
        .flat_map(spans_with_service)
        .map(|(s, _)| s)
        .collect();
    assert_eq!(services.len(), 10, "{services:?}");
}
