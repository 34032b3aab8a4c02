use std::time::Duration;

use eastwest_baseline::{HistoryWriter, maintain};
use eastwest_model::{Call, Workload};

use crate::PolicyFiles;

use super::*;

/// 2026-01-05T00:00:00Z in days since the epoch.
const DAY0: i64 = 20_458;
const HOUR: i64 = 3_600_000_000_000;
const WEEK: Duration = Duration::from_secs(7 * 86_400);

fn call(day: i64, hour: i64, src: &str, mtls: Option<bool>, trace: &str) -> Call {
    Call {
        event_time_ns: day * NS_PER_DAY + hour * HOUR,
        source: Workload::new(src)
            .in_namespace("shop")
            .with_principal(format!("spiffe://c/ns/shop/sa/{src}")),
        destination: Workload::new("users").in_namespace("shop"),
        method: "GET".into(),
        route: "/users/{id}".into(),
        mtls,
        trace_id: trace.into(),
        weight: 1.0,
        ..Default::default()
    }
}

fn write(dir: &Path, calls: &[Call]) {
    let mut w = HistoryWriter::new(dir, WEEK, 1000);
    for c in calls {
        w.append(c.clone(), true).unwrap();
    }
    w.flush().unwrap();
}

fn at(day: i64, hour: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(day * NS_PER_DAY + hour * HOUR)
}

/// Covers cart's calls (three); web's one call passes by default allow.
struct AllowCart;

impl PolicyCheck for AllowCart {
    fn describe(&self) -> String {
        "allow-cart.yaml".into()
    }
    fn edge(&self, source: &str, _: &str) -> Option<EdgePolicy> {
        let cart = source == "cart.shop";
        Some(EdgePolicy {
            coverage: if cart {
                EdgeCoverage::Covered
            } else {
                EdgeCoverage::Uncovered
            },
            allowed_calls: if cart { 3.0 } else { 0.0 },
            default_allowed_calls: if cart { 0.0 } else { 1.0 },
            denied_calls: 0.0,
            by: "test".into(),
        })
    }
}

#[tokio::test]
async fn expired_days_come_from_roll_ups_and_the_figures_do_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let calls = [
        call(DAY0, 1, "cart", Some(true), "t1"),
        call(DAY0, 2, "cart", Some(false), "t2"),
        call(DAY0 + 1, 3, "web", Some(false), "t3"),
        call(DAY0 + 2, 4, "cart", None, "t4"),
    ];
    write(dir.path(), &calls);
    let (since, until) = (at(DAY0, 0), at(DAY0 + 3, 0));
    let raw = build(dir.path(), since, until, None).await.unwrap();
    assert!(raw.sources.rollup_days.is_empty());
    assert_eq!(raw.totals.calls, 4);
    assert_eq!(
        (
            raw.totals.mtls_calls,
            raw.totals.plaintext_calls,
            raw.totals.unknown_tls_calls
        ),
        (1, 2, 1)
    );
    let cart = raw.edges.iter().find(|e| e.source == "cart.shop").unwrap();
    assert_eq!((cart.calls, cart.plaintext_calls), (3, 1));
    assert_eq!(cart.plaintext_trace_ids, ["t2"]);
    assert_eq!(cart.source_principals, ["spiffe://c/ns/shop/sa/cart"]);
    assert!(!raw.policy.assessed);
    assert!(raw.policy.note.contains("no policy files"));

    // A week later days 0 and 1 are rolled up and their raw hours pruned.
    let now = (DAY0 + 8) * NS_PER_DAY + 12 * HOUR;
    maintain(dir.path(), now, WEEK, Duration::from_secs(400 * 86_400))
        .await
        .unwrap();
    let pruned = HistoryWriter::new(dir.path(), WEEK, 1000)
        .prune(now)
        .unwrap();
    assert!(pruned >= 2, "raw hours of days 0 and 1 are gone");
    let later = build(dir.path(), since, until, Some(&AllowCart))
        .await
        .unwrap();
    assert_eq!(later.sources.rollup_days, ["2026-01-05", "2026-01-06"]);
    assert_eq!(
        later.totals, raw.totals,
        "roll-ups give the figures raw rows gave"
    );
    assert_eq!(
        later
            .edges
            .iter()
            .map(|e| e.policy.as_ref().map(|p| p.coverage))
            .collect::<Vec<_>>(),
        [Some(EdgeCoverage::Covered), Some(EdgeCoverage::Uncovered)]
    );
    let mut unpoliced = later.edges.clone();
    for e in &mut unpoliced {
        e.policy = None;
    }
    assert_eq!(unpoliced, raw.edges);
    assert_eq!(
        (later.policy.edges_covered, later.policy.edges_uncovered),
        (Some(1), Some(1))
    );
    assert_eq!(later.policy.calls_covered, Some(0.75));
}

#[test]
fn raw_windows_skip_roll_up_days() {
    let days = BTreeSet::from([DAY0, DAY0 + 1, DAY0 + 5]);
    let w = raw_windows(DAY0 * NS_PER_DAY + HOUR, (DAY0 + 7) * NS_PER_DAY, &days);
    assert_eq!(
        w,
        vec![
            ((DAY0 + 2) * NS_PER_DAY, (DAY0 + 5) * NS_PER_DAY),
            ((DAY0 + 6) * NS_PER_DAY, (DAY0 + 7) * NS_PER_DAY),
        ]
    );
}

#[tokio::test]
async fn the_html_report_renders_markup_in_names_as_text_and_csv_defuses_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = call(DAY0, 1, "cart", Some(false), "t1");
    c.source = Workload::new("<script>alert(1)</script>");
    c.destination = Workload::new("=cmd|' /C calc'!A0");
    write(dir.path(), &[c]);
    let r = build(dir.path(), at(DAY0, 0), at(DAY0 + 1, 0), None)
        .await
        .unwrap();
    let html = crate::render(&r, crate::Format::Html).unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let csv = crate::render(&r, crate::Format::Csv).unwrap();
    assert!(csv.contains("'=cmd|' /C calc'!A0"), "{csv}");
    assert!(!csv.contains(",=cmd"), "{csv}");
}

#[tokio::test]
async fn policy_files_cover_deny_or_leave_uncovered_each_edge_by_the_dialects_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let to = |mut c: Call, dst: &str, route: &str| {
        c.destination = Workload::new(dst).in_namespace("shop");
        c.route = route.into();
        c
    };
    write(
        dir.path(),
        &[
            call(DAY0, 1, "cart", Some(true), "t1"),
            call(DAY0, 2, "cart", Some(true), "t2"),
            call(DAY0, 3, "web", Some(true), "t3"),
            to(call(DAY0, 4, "cart", Some(true), "t4"), "orders", "/orders"),
        ],
    );
    // users admits cart's GET on a one-segment template; orders has no policy.
    let file = dir.path().join("users.yaml");
    std::fs::write(
        &file,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
         metadata: {name: users, namespace: shop}\n\
         spec:\n  selector: {matchLabels: {app: users}}\n  action: ALLOW\n  rules:\n\
         \x20 - from: [{source: {principals: [c/ns/shop/sa/cart]}}]\n\
         \x20   to: [{operation: {methods: [GET], paths: ['/users/{*}']}}]\n",
    )
    .unwrap();
    let (since, until) = (at(DAY0, 0), at(DAY0 + 1, 0));
    let files = PolicyFiles::load(&[file], dir.path(), since, until)
        .await
        .unwrap();
    let r = build(dir.path(), since, until, Some(&files)).await.unwrap();
    let edge = |s: &str, d: &str| {
        let e = r
            .edges
            .iter()
            .find(|e| e.source == s && e.destination == d)
            .unwrap();
        e.policy.clone().unwrap()
    };
    let cart = edge("cart.shop", "users.shop");
    assert_eq!(
        (cart.coverage, cart.allowed_calls),
        (EdgeCoverage::Covered, 2.0)
    );
    assert!(cart.by.contains("shop/users"), "{}", cart.by);
    let web = edge("web.shop", "users.shop");
    assert_eq!(
        (web.coverage, web.denied_calls),
        (EdgeCoverage::Denied, 1.0)
    );
    let orders = edge("cart.shop", "orders.shop");
    assert_eq!(orders.coverage, EdgeCoverage::Uncovered);
    assert_eq!(
        (
            r.policy.edges_covered,
            r.policy.edges_uncovered,
            r.policy.edges_denied,
            r.policy.edges_unassessed
        ),
        (Some(1), Some(1), Some(1), Some(0))
    );
    assert_eq!(r.policy.calls_covered, Some(0.5));
    assert!(r.policy.policy.as_deref().unwrap().contains("users.yaml"));
    let csv = crate::render(&r, crate::Format::Csv).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("edge,web.shop,users.shop") && l.contains(",denied,")),
        "{csv}"
    );

    let missing = PolicyFiles::load(&[dir.path().join("nope.yaml")], dir.path(), since, until)
        .await
        .unwrap_err();
    assert!(matches!(missing, PostureError::Policy(_)), "{missing}");
}
