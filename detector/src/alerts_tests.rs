use super::*;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_400 * SEC;

fn finding(route: &str, score: f64, sensitive: bool) -> Finding {
    Finding {
        kind: AlertKind::NewEndpoint,
        score,
        sensitive,
        evidence: Default::default(),
        summary: format!("called {route}"),
        destination: Some(Workload::new("payments").in_namespace("shop")),
        method: Some("GET".into()),
        route: Some(route.into()),
        rollout: None,
    }
}

fn workload(service: &str) -> Workload {
    Workload::new(service).in_namespace("shop")
}

fn config(per_pool: usize, per_source: usize) -> DetectorConfig {
    DetectorConfig {
        alert_budget_per_namespace: per_pool,
        alert_budget_per_source: per_source,
        min_update_interval: std::time::Duration::ZERO,
        ..Default::default()
    }
}

/// Records `f` from `source` at `t`; `Some(alert)` when it became (or updated) an alert
/// of its own, `None` when the budget counted it in a storm.
fn record(
    book: &mut AlertBook,
    source: &Workload,
    known: bool,
    t: i64,
    f: Finding,
    config: &DetectorConfig,
) -> Option<Alert> {
    let s = Subject {
        source,
        entry: None,
        time_ns: t,
        trace_ids: &[],
    };
    match book.record(f, &s, known, config) {
        Recorded::Emit(a) => Some(*a),
        Recorded::Held(id) => book.get(&id).cloned(),
        Recorded::Suppressed { .. } => None,
    }
}

#[test]
fn high_and_critical_findings_are_never_suppressed() {
    let config = config(2, 1);
    let mut book = AlertBook::default();
    let decoy = workload("frontend");
    assert!(
        record(
            &mut book,
            &decoy,
            true,
            T0,
            finding("/a", 5.0, false),
            &config
        )
        .is_some()
    );
    for i in 0..50 {
        let f = finding(&format!("/decoy/{i}"), 7.0, false);
        assert!(record(&mut book, &decoy, true, T0 + i, f, &config).is_none());
    }
    let purge = finding("/admin/purge", 8.0, true);
    let alert = record(&mut book, &decoy, true, T0 + 60, purge, &config)
        .expect("a critical finding is stored whatever the budget");
    assert!(alert.severity >= Severity::High, "{alert:?}");
    // And it spent nothing: another high one after it is stored too.
    let other = record(
        &mut book,
        &workload("cart"),
        true,
        T0 + 61,
        finding("/admin/x", 9.5, false),
        &config,
    );
    assert_eq!(other.map(|a| a.severity), Some(Severity::High));
}

#[test]
fn one_source_cannot_spend_the_budget_of_the_others() {
    let config = config(5, 2);
    let mut book = AlertBook::default();
    let noisy = workload("frontend");
    let stored = (0..10)
        .filter(|i| {
            let f = finding(&format!("/n/{i}"), 5.0, false);
            record(&mut book, &noisy, true, T0 + i, f, &config).is_some()
        })
        .count();
    assert_eq!(stored, 2, "its own share");
    for (i, name) in ["cart", "checkout", "users"].iter().enumerate() {
        let f = finding("/quiet", 5.0, false);
        assert!(
            record(
                &mut book,
                &workload(name),
                true,
                T0 + 20 + i as i64,
                f,
                &config
            )
            .is_some(),
            "{name} still has budget"
        );
    }
    // The pool (5) is spent now.
    let late = record(
        &mut book,
        &workload("ledger"),
        true,
        T0 + 30,
        finding("/l", 5.0, false),
        &config,
    );
    assert!(late.is_none());
    // The next budget window starts afresh.
    let next = T0 + config.budget_window.as_nanos() as i64;
    assert!(
        record(
            &mut book,
            &workload("ledger"),
            true,
            next,
            finding("/l", 5.0, false),
            &config
        )
        .is_some()
    );
}

#[test]
fn minted_sources_share_their_own_pool_and_leave_the_namespace_s_alone() {
    let config = config(5, 2);
    let mut book = AlertBook::default();
    let mut stored = 0;
    for i in 0..40 {
        let minted = workload(&format!("decoy-{i}"));
        let f = finding("/x", 5.0, false);
        stored += record(&mut book, &minted, false, T0 + i, f, &config).is_some() as usize;
    }
    assert_eq!(
        stored, 5,
        "one pool for every name the baseline does not know"
    );
    for i in 0..5 {
        let f = finding(&format!("/real/{i}"), 5.0, false);
        let known = workload(&format!("svc{i}"));
        assert!(record(&mut book, &known, true, T0 + 100 + i, f, &config).is_some());
    }
}

#[test]
fn suppressed_findings_are_counted_in_one_storm_alert() {
    let config = config(50, 3);
    let mut book = AlertBook::default();
    let decoy = workload("frontend");
    let mut storm = None;
    for i in 0..20 {
        let f = finding(&format!("/d/{i}"), 6.5, false);
        let entry = eastwest_model::Entry {
            service: "frontend".into(),
            route: "GET /".into(),
        };
        let s = Subject {
            source: &decoy,
            entry: Some(&entry),
            time_ns: T0 + i * SEC,
            trace_ids: &[],
        };
        if let Recorded::Suppressed {
            storm: Some(a),
            storm_id,
            pool,
            ..
        } = book.record(f, &s, true, &config)
        {
            assert_eq!(a.id, storm_id);
            assert_eq!(pool, "namespace \"shop\"");
            storm = Some(*a);
        }
    }
    let storm = storm.expect("a storm alert");
    assert_eq!(storm.kind, AlertKind::AlertStorm);
    assert_eq!(storm.severity, Severity::High);
    assert_eq!(storm.count, 17);
    assert_eq!(storm.evidence["suppressed"], 17);
    assert_eq!(storm.evidence["suppressed_by_source"]["frontend.shop"], 17);
    assert_eq!(storm.entry, None, "about the pool, not one request");
    assert!(
        storm.summary.contains("17 info-to-medium findings")
            && storm.summary.contains("frontend.shop (17)"),
        "{}",
        storm.summary
    );
}

#[test]
fn held_findings_released_later_keep_their_count_and_traces() {
    let config = config(50, 10);
    let mut book = AlertBook::default();
    let src = workload("cart");
    let traces = vec!["t1".to_string()];
    let s = Subject {
        source: &src,
        entry: None,
        time_ns: T0,
        trace_ids: &traces,
    };
    let f = finding("/x", 5.0, false);
    let id = alert_id(&f, &s);
    assert!(matches!(
        book.record(f, &s, true, &config),
        Recorded::Emit(_)
    ));
    book.add_occurrences(&id, 4, T0 + 9 * SEC, &["t1".into(), "t2".into()], &config);
    let flushed = book.flush();
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].count, 5);
    assert_eq!(flushed[0].trace_ids, vec!["t1", "t2"]);
    assert_eq!(flushed[0].last_seen, time(T0 + 9 * SEC));
}
