use eastwest_model::{AlertKind, Severity};

use super::tests::{call, learned, run, w};
use super::*;

const SEC: i64 = 1_000_000_000;

fn from(service: &str, principal: Option<&str>, t: i64, dst: &str, route: &str) -> Call {
    let mut c = call(t, "frontend", dst, "GET", route, "GET /cart");
    c.source = w(service);
    c.source.principal = principal.map(Into::into);
    c.entry = None;
    c
}

const EXPORTER: &str = "spiffe://cluster.local/ns/shop/sa/exporter";

#[test]
fn a_new_workload_gets_one_low_notice_that_grows_with_its_callees() {
    let (mut engine, t) = learned();
    let calls = vec![
        from("exporter", Some(EXPORTER), t + SEC, "cart", "/cart/{id}"),
        from(
            "exporter",
            Some(EXPORTER),
            t + 2 * SEC,
            "cart",
            "/cart/{id}",
        ),
        from(
            "exporter",
            Some(EXPORTER),
            t + 3 * SEC,
            "product",
            "/products/{id}",
        ),
        from("exporter", Some(EXPORTER), t + 60 * SEC, "redis", "cart"),
    ];
    let alerts = run(&mut engine, calls);
    assert!(
        alerts.iter().all(|a| a.kind == AlertKind::NewWorkload),
        "{alerts:#?}"
    );
    let last = alerts.last().expect("a notice");
    assert_eq!(last.severity, Severity::Low);
    assert!(alerts.iter().all(|a| a.id == last.id), "one notice");
    let callees = last.evidence["callees"].as_array().unwrap();
    assert_eq!(callees.len(), 3, "{callees:?}");
    assert!(last.summary.contains("redis"), "{}", last.summary);
}

#[test]
fn a_new_workload_s_sensitive_call_still_alerts() {
    let (mut engine, t) = learned();
    let alerts = run(
        &mut engine,
        vec![from(
            "exporter",
            Some(EXPORTER),
            t + SEC,
            "cart",
            "/admin/users",
        )],
    );
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == AlertKind::SensitiveEndpoint),
        "{alerts:#?}"
    );
}

#[test]
fn a_minted_name_without_a_new_identity_is_not_a_new_workload() {
    let (mut engine, t) = learned();
    // No principal at all, and the principal of a workload the baseline knows.
    let cart = "spiffe://cluster.local/ns/shop/sa/cart";
    let alerts = run(
        &mut engine,
        vec![
            from("ghost", None, t + SEC, "product", "/products/{id}"),
            from(
                "mimic",
                Some(cart),
                t + 2 * SEC,
                "product",
                "/products/{id}",
            ),
        ],
    );
    assert!(
        alerts.iter().all(|a| a.kind != AlertKind::NewWorkload),
        "{alerts:#?}"
    );
}

#[test]
fn a_workload_that_only_received_calls_is_not_new_its_first_call_out_is_a_new_edge() {
    let (mut engine, t) = learned();
    let redis = "spiffe://cluster.local/ns/shop/sa/redis";
    let alerts = run(
        &mut engine,
        vec![from(
            "redis",
            Some(redis),
            t + SEC,
            "product",
            "/products/{id}",
        )],
    );
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::NewEdge),
        "{alerts:#?}"
    );
    assert!(alerts.iter().all(|a| a.kind != AlertKind::NewWorkload));
}

#[test]
fn after_the_grace_period_a_new_callee_is_no_longer_folded() {
    let (mut engine, t) = learned();
    let first = run(
        &mut engine,
        vec![from(
            "exporter",
            Some(EXPORTER),
            t + SEC,
            "cart",
            "/cart/{id}",
        )],
    );
    assert_eq!(first.len(), 1);
    let later = t + 2 * 3600 * SEC;
    let alerts = run(
        &mut engine,
        vec![from(
            "exporter",
            Some(EXPORTER),
            later,
            "product",
            "/products/{id}",
        )],
    );
    assert!(
        alerts.iter().all(|a| a.kind != AlertKind::NewWorkload),
        "{alerts:#?}"
    );
}

#[test]
fn a_leaf_s_first_fan_out_is_scored_against_its_silence() {
    let (mut engine, t) = learned();
    let redis = "spiffe://cluster.local/ns/shop/sa/redis";
    let callees = ["product", "cart", "frontend", "db", "payments", "users"];
    let calls = callees
        .iter()
        .enumerate()
        .map(|(i, dst)| from("redis", Some(redis), t + (i as i64 + 1) * SEC, dst, "/x"))
        .collect();
    let alerts = run(&mut engine, calls);
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::FanOut),
        "{alerts:#?}"
    );
}
