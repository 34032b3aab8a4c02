//! Rule sets, backtests and drift over a real data dir: Parquet history written by the
//! history writer `serve` uses, read back through DataFusion.

use std::time::Duration;

use chrono::Utc;
use eastwest_baseline::HistoryWriter;
use eastwest_model::{Alert, AlertKind, AlertState, Call, Protocol, Severity, Workload};

use crate::{
    Format, PolicySet, backtest, call_groups, compile, drift, parse_yaml, rules_from_data_dir,
};

const T0: i64 = 1_767_571_200_000_000_000;
const HOUR: i64 = 3_600_000_000_000;

fn w(s: &str) -> Workload {
    Workload::new(s)
        .in_namespace("shop")
        .with_principal(format!("spiffe://cluster.local/ns/shop/sa/{s}"))
}

fn call(t: i64, src: &str, dst: &str, method: &str, route: &str, port: u16) -> Call {
    Call {
        event_time_ns: t,
        source: w(src),
        destination: Workload::new(dst).in_namespace("shop"),
        protocol: Protocol::Http,
        method: method.into(),
        route: route.into(),
        destination_address: Some(format!("{dst}.shop:{port}").into()),
        trace_id: format!("{t:032x}").into(),
        weight: 1.0,
        ..Default::default()
    }
}

fn alert(src: &str, dst: &str, route: &str, state: AlertState) -> Alert {
    Alert {
        id: format!("a-{route}"),
        kind: AlertKind::SensitiveEndpoint,
        severity: Severity::High,
        score: 9.0,
        source: w(src),
        destination: Some(Workload::new(dst).in_namespace("shop")),
        method: Some("GET".into()),
        route: Some(route.into()),
        entry: None,
        first_seen: chrono::DateTime::from_timestamp_nanos(T0),
        last_seen: Utc::now(),
        count: 1,
        trace_ids: vec![],
        incident_id: None,
        summary: format!("{src} called {route}"),
        evidence: Default::default(),
        state,
    }
}

/// 24 hours of `frontend → users`, a daily job, and two alerted calls (one accepted).
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut h = HistoryWriter::new(dir.path(), Duration::from_secs(86400 * 3650), 1000);
    for hour in 0..24 {
        for i in 0..10 {
            let t = T0 + hour * HOUR + i;
            h.append(
                call(t, "frontend", "users", "GET", "/users/{id}", 8080),
                true,
            )
            .unwrap();
        }
    }
    // Rare but legitimate: once a day.
    h.append(
        call(T0 + 3 * HOUR, "report-job", "users", "GET", "/export", 8080),
        true,
    )
    .unwrap();
    h.append(
        call(T0 + 30 * HOUR, "cart", "users", "GET", "/admin", 8080),
        false,
    )
    .unwrap();
    h.append(
        call(T0 + 30 * HOUR, "cart", "users", "GET", "/debug", 8080),
        false,
    )
    .unwrap();
    h.flush().unwrap();
    dir
}

fn alerts() -> Vec<Alert> {
    vec![
        alert("cart", "users", "/admin", AlertState::Open),
        alert("cart", "users", "/debug", AlertState::Accepted),
    ]
}

#[tokio::test]
async fn history_rules_cover_rare_and_accepted_calls_but_not_open_alerts() {
    let dir = data_dir();
    let rules = rules_from_data_dir(dir.path(), Some(0), None, &alerts())
        .await
        .unwrap();
    let routes: Vec<_> = rules.workloads[0]
        .rules
        .iter()
        .map(|r| (r.source.service.as_str(), r.route.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("cart", "/debug"),
            ("frontend", "/users/{id}"),
            ("report-job", "/export")
        ]
    );
    assert_eq!(rules.excluded.len(), 1);
    assert_eq!(rules.excluded[0].route, "/admin");
    let ports: Vec<_> = rules.workloads[0].rules.iter().map(|r| r.port).collect();
    assert!(ports.iter().all(|p| *p == Some(8080)));
}

#[tokio::test]
async fn backtest_denies_only_the_unaccepted_alert_in_every_dialect() {
    let dir = data_dir();
    let alerts = alerts();
    let rules = rules_from_data_dir(dir.path(), Some(0), None, &alerts)
        .await
        .unwrap();
    let groups = call_groups(dir.path(), None, None).await.unwrap();
    for format in [Format::Istio, Format::Cilium, Format::Linkerd] {
        let docs = parse_yaml(&compile(&rules, format).to_yaml(&rules).unwrap()).unwrap();
        let set = PolicySet::new(&docs).unwrap();
        let report = backtest(&set, groups.clone(), &alerts, None, None);
        assert_eq!(report.denied_calls, 1.0, "{format:?}: {}", report.to_text());
        assert_eq!(report.denied[0].route, "/admin");
        assert_eq!(report.denied[0].trace_ids.len(), 1);
        let blocked: Vec<_> = report
            .alerts
            .iter()
            .map(|a| (a.id.as_str(), a.blocked))
            .collect();
        assert_eq!(
            blocked,
            [("a-/admin", true), ("a-/debug", false)],
            "{format:?}"
        );
    }
    // NetworkPolicy is L4: the same caller and port pass.
    let docs = compile(&rules, Format::NetworkPolicy).documents;
    let report = backtest(&PolicySet::new(&docs).unwrap(), groups, &alerts, None, None);
    assert_eq!(report.denied_calls, 0.0, "{}", report.to_text());
}

#[tokio::test]
async fn drift_finds_uncovered_unused_and_broad_rules() {
    let dir = data_dir();
    let groups = call_groups(dir.path(), None, None).await.unwrap();
    let docs = parse_yaml(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: users, namespace: shop}
spec:
  selector: {matchLabels: {app: users}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/*"]}}]
    to: [{operation: {paths: ["/users/*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/legacy"]}}]
    to: [{operation: {paths: ["/v1/{**}"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: unrelated, namespace: shop}
spec:
  selector: {matchLabels: {app: nothing}}
"#,
    )
    .unwrap();
    let set = PolicySet::new(&docs).unwrap();
    let report = drift(&docs, &set, &groups, T0 + 20 * HOUR);
    let unused: Vec<_> = report.unused.iter().map(|u| u.rule.as_str()).collect();
    assert_eq!(unused, ["AuthorizationPolicy shop/users rule 1"]);
    let broad: Vec<_> = report.broad.iter().map(|b| b.rule.as_str()).collect();
    assert!(
        broad.contains(&"AuthorizationPolicy shop/users rule 0"),
        "{broad:?}"
    );
    assert_eq!(report.broad[0].used_routes, ["GET /users/{id}"]);
    // The job and cart calls are denied, none passes by default: users is selected.
    assert!(report.uncovered.is_empty());
    assert_eq!(report.denied.len(), 3);
}
