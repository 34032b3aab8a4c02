use std::time::Duration;

use eastwest_baseline::{Baseline, BaselineConfig};
use eastwest_model::{AlertKind, Call, Entry, Severity, Workload};

use super::*;

pub(super) const SEC: i64 = 1_000_000_000;
pub(super) const T0: i64 = 1_700_000_000 * SEC;

pub(super) fn w(service: &str) -> Workload {
    Workload::new(service)
        .in_namespace("shop")
        .with_principal(format!("spiffe://cluster.local/ns/shop/sa/{service}"))
}

pub(super) fn call(t: i64, src: &str, dst: &str, method: &str, route: &str, entry: &str) -> Call {
    Call {
        event_time_ns: t,
        source: w(src),
        destination: w(dst),
        method: method.into(),
        route: route.into(),
        status: Some(200),
        mtls: Some(true),
        trace_id: format!("{:032x}", t).into(),
        entry: Some(Entry {
            service: "frontend".into(),
            route: entry.into(),
        }),
        weight: 1.0,
        ..Default::default()
    }
}

/// One request tree per entry route.
pub(super) fn request(t: i64, entry: &str) -> Vec<Call> {
    match entry {
        "GET /cart" => vec![
            call(t, "frontend", "cart", "GET", "/cart/{id}", entry),
            call(t + 1, "cart", "redis", "GET", "cart", entry),
        ],
        _ => vec![
            call(t, "frontend", "product", "GET", "/products/{id}", entry),
            call(t + 1, "product", "db", "SELECT", "products", entry),
        ],
    }
}

/// An engine that learned 1h of traffic (a request every 5 s, alternating entries, a
/// rare admin-free path once, an hourly job) and is detecting.
pub(super) fn learned() -> (Engine, i64) {
    learned_with(|_, _| Vec::new())
}

/// [`learned`], plus the calls `extra(t, i)` adds to the `i`-th request at `t`.
pub(super) fn learned_with(extra: impl Fn(i64, usize) -> Vec<Call>) -> (Engine, i64) {
    learned_with_config(DetectorConfig::default(), extra)
}

pub(super) fn learned_with_config(
    config: DetectorConfig,
    extra: impl Fn(i64, usize) -> Vec<Call>,
) -> (Engine, i64) {
    let baseline = Baseline::new(BaselineConfig {
        learning_period: Duration::from_secs(3600),
        ..Default::default()
    });
    let mut engine = Engine::new(config, baseline);
    let mut t = T0;
    let mut i = 0;
    while t < T0 + 3600 * SEC {
        let entry = if i % 2 == 0 {
            "GET /cart"
        } else {
            "GET /product"
        };
        for c in request(t, entry) {
            assert!(
                engine.process(&c).alerts.is_empty(),
                "no alerts while learning"
            );
        }
        if i == 100 {
            engine.process(&call(
                t + 2,
                "frontend",
                "recommendations",
                "GET",
                "/recs",
                "GET /cart",
            ));
        }
        for c in extra(t, i) {
            engine.process(&c);
        }
        if i % 720 == 0 {
            engine.process(&call(
                t + 3,
                "reporter",
                "db",
                "SELECT",
                "orders",
                "GET /cart",
            ));
        }
        t += 5 * SEC;
        i += 1;
    }
    engine.advance_to(t);
    assert!(!engine.baseline().is_learning());
    (engine, t)
}

pub(super) fn run(engine: &mut Engine, calls: Vec<Call>) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for c in calls {
        alerts.extend(engine.process(&c).alerts);
    }
    alerts
}

pub(super) fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    let mut k: Vec<AlertKind> = alerts.iter().map(|a| a.kind).collect();
    k.sort();
    k.dedup();
    k
}

#[test]
fn admin_endpoint_from_a_compromised_service_is_new_edge_and_sensitive() {
    let (mut e, t) = learned();
    let alerts = run(
        &mut e,
        vec![call(
            t,
            "cart",
            "users",
            "DELETE",
            "/admin/users/{id}",
            "GET /cart",
        )],
    );
    assert_eq!(
        kinds(&alerts),
        vec![AlertKind::NewEdge, AlertKind::SensitiveEndpoint]
    );
    let s = alerts
        .iter()
        .find(|a| a.kind == AlertKind::SensitiveEndpoint)
        .unwrap();
    assert!(s.severity >= Severity::High, "{s:?}");
    assert!(
        s.summary.contains("admin") && s.summary.contains("trace"),
        "{}",
        s.summary
    );
    assert!(s.evidence.contains_key("pattern_weight"));
}

#[test]
fn repeated_findings_update_one_alert() {
    let (mut e, t) = learned();
    let a = run(
        &mut e,
        vec![call(t, "cart", "users", "GET", "/admin", "GET /cart")],
    );
    let b = run(
        &mut e,
        vec![call(t + SEC, "cart", "users", "GET", "/admin", "GET /cart")],
    );
    assert_eq!(a[0].id, b[0].id);
    assert_eq!(b[0].count, 2);
    assert_eq!(b[0].trace_ids.len(), 2);
}

#[test]
fn benign_surge_rollout_rare_path_and_jobs_stay_silent() {
    let (mut e, mut t) = learned();
    let mut calls = Vec::new();
    for i in 0..500 {
        // ×5 the learning rate on every edge at once.
        let entry = if i % 2 == 0 {
            "GET /cart"
        } else {
            "GET /product"
        };
        for mut c in request(t, entry) {
            c.source_version = Some("v2".into()); // a rollout: new version, same calls
            calls.push(c);
        }
        t += SEC;
    }
    calls.push(call(
        t,
        "frontend",
        "recommendations",
        "GET",
        "/recs",
        "GET /cart",
    )); // rare, seen once
    calls.push(call(
        t + 1,
        "reporter",
        "db",
        "SELECT",
        "orders",
        "GET /cart",
    )); // hourly job
    let alerts = run(&mut e, calls);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn known_edge_from_a_request_that_never_reaches_it_is_a_context_anomaly() {
    let (mut e, t) = learned();
    let alerts = run(
        &mut e,
        vec![call(t, "cart", "redis", "GET", "cart", "GET /product")],
    );
    assert_eq!(kinds(&alerts), vec![AlertKind::ContextAnomaly]);
}

#[test]
fn a_rare_endpoint_of_a_known_edge_from_a_request_that_never_reaches_it_is_a_context_anomaly() {
    let mut e = Engine::new(
        DetectorConfig::default(),
        Baseline::new(BaselineConfig {
            learning_period: Duration::from_secs(3600),
            ..Default::default()
        }),
    );
    // frontend → cart is reached from both entries, but /cart/{id}/items (1 call in 100)
    // only from GET /checkout.
    let mut t = T0;
    for i in 0..800 {
        let (route, entry) = if i % 100 == 0 {
            ("/cart/{id}/items", "GET /checkout")
        } else {
            ("/cart/{id}", "GET /cart")
        };
        e.process(&call(t, "frontend", "cart", "GET", route, entry));
        t += 5 * SEC;
    }
    e.advance_to(t);
    assert!(!e.baseline().is_learning());

    let from_checkout = call(
        t,
        "frontend",
        "cart",
        "GET",
        "/cart/{id}/items",
        "GET /checkout",
    );
    assert_eq!(
        run(&mut e, vec![from_checkout]),
        vec![],
        "known under its entry"
    );
    let from_cart = call(
        t + SEC,
        "frontend",
        "cart",
        "GET",
        "/cart/{id}/items",
        "GET /cart",
    );
    let alerts = run(&mut e, vec![from_cart]);
    assert_eq!(kinds(&alerts), vec![AlertKind::ContextAnomaly]);
    assert_eq!(alerts[0].evidence["scope"], "endpoint");
}

#[test]
fn plaintext_on_an_mtls_edge_and_a_borrowed_identity_alert() {
    let (mut e, t) = learned();
    let mut plain = call(t, "cart", "redis", "GET", "cart", "GET /cart");
    plain.mtls = Some(false);
    assert_eq!(kinds(&run(&mut e, vec![plain])), vec![AlertKind::Plaintext]);
    let mut spoof = call(t + SEC, "cart", "redis", "GET", "cart", "GET /cart");
    spoof.source.principal = Some("spiffe://cluster.local/ns/shop/sa/product".into());
    let alerts = run(&mut e, vec![spoof]);
    assert_eq!(kinds(&alerts), vec![AlertKind::IdentityMismatch]);
    assert_eq!(alerts[0].evidence["principal_known_for_workloads"], 1);
}

#[test]
fn a_claimed_principal_the_callee_did_not_see_is_an_identity_mismatch() {
    let (mut e, t) = learned();
    // The callee saw cart's own certificate; cart's span claimed product's identity.
    let mut lie = call(t, "cart", "redis", "GET", "cart", "GET /cart");
    lie.claimed_principal = Some("spiffe://cluster.local/ns/shop/sa/product".into());
    let alerts = run(&mut e, vec![lie]);
    assert_eq!(kinds(&alerts), vec![AlertKind::IdentityMismatch]);
    assert_eq!(
        alerts[0].evidence["claimed_principal"],
        "spiffe://cluster.local/ns/shop/sa/product"
    );
    // A claim that matches what the callee saw is no finding.
    let mut honest = call(t + SEC, "cart", "redis", "GET", "cart", "GET /cart");
    honest.claimed_principal = honest.source.principal.clone();
    assert!(run(&mut e, vec![honest]).is_empty());
}

/// A caller whose only calls went to a database outside the mesh (no mTLS status, no
/// identity) and a payments service that only ever received mTLS.
fn learned_with_an_unmeshed_caller() -> (Engine, i64) {
    learned_with(|t, i| {
        let mut calls = Vec::new();
        if i % 6 == 0 {
            let mut db = call(t + 4, "voucher", "mysql", "SELECT", "voucher", "GET /cart");
            db.mtls = None;
            db.source.principal = None;
            calls.push(db);
        }
        if i % 3 == 0 {
            calls.push(call(
                t + 5,
                "checkout",
                "payments",
                "POST",
                "/charge",
                "GET /cart",
            ));
        }
        calls
    })
}

#[test]
fn plaintext_into_an_mtls_only_destination_alerts_on_a_new_edge() {
    let (mut e, t) = learned_with_an_unmeshed_caller();
    let mut plain = call(t, "voucher", "payments", "POST", "/charge", "GET /cart");
    plain.mtls = Some(false);
    plain.source.principal = None;
    plain.entry = None; // the attacker's own request
    let alerts = run(&mut e, vec![plain]);
    assert_eq!(
        kinds(&alerts),
        vec![AlertKind::NewEdge, AlertKind::Plaintext],
        "{alerts:#?}"
    );
    let plaintext = alerts
        .iter()
        .find(|a| a.kind == AlertKind::Plaintext)
        .unwrap();
    assert_eq!(plaintext.evidence["scope"], "destination");
    assert!(
        plaintext
            .summary
            .contains("calls into payments.shop used mTLS")
    );
}

#[test]
fn an_unmeshed_caller_presenting_another_workloads_identity_alerts() {
    let (mut e, t) = learned_with_an_unmeshed_caller();
    let mut spoof = call(t, "voucher", "payments", "POST", "/charge", "GET /cart");
    spoof.source.principal = Some("spiffe://cluster.local/ns/shop/sa/checkout".into());
    spoof.entry = None;
    let alerts = run(&mut e, vec![spoof]);
    assert_eq!(
        kinds(&alerts),
        vec![AlertKind::NewEdge, AlertKind::IdentityMismatch],
        "{alerts:#?}"
    );
    let identity = alerts
        .iter()
        .find(|a| a.kind == AlertKind::IdentityMismatch)
        .unwrap();
    assert!(
        identity.summary.contains("having presented none"),
        "{}",
        identity.summary
    );

    // Its own identity on its first mTLS call is no mismatch.
    let own = call(
        t + SEC,
        "voucher",
        "mysql",
        "SELECT",
        "voucher",
        "GET /cart",
    );
    assert!(run(&mut e, vec![own]).is_empty());
}

#[test]
fn chained_new_edges_form_a_lateral_movement_path() {
    let (mut e, t) = learned();
    let mut last = EngineOutput::default();
    for c in [
        call(t, "cart", "users", "GET", "/users", "GET /cart"),
        call(
            t + 60 * SEC,
            "users",
            "billing",
            "POST",
            "/refunds",
            "GET /cart",
        ),
    ] {
        last = e.process(&c);
    }
    let incident = &last.incidents[0];
    assert_eq!(
        incident.path,
        vec!["cart.shop", "users.shop", "billing.shop"]
    );
    assert_eq!(incident.severity, Severity::Critical);
    assert!(
        incident
            .summary
            .contains("cart.shop → users.shop → billing.shop")
    );
}

#[test]
fn same_calls_in_any_batching_give_the_same_alerts() {
    let attack: Vec<Call> = (0..20)
        .map(|i| {
            call(
                i * SEC,
                "cart",
                &format!("svc{}", i % 7),
                "GET",
                "/admin",
                "GET /cart",
            )
        })
        .collect();
    let (mut a, t) = learned();
    let (mut b, _) = learned();
    let shifted: Vec<Call> = attack
        .iter()
        .cloned()
        .map(|mut c| {
            c.event_time_ns += t;
            c
        })
        .collect();
    let one = run(&mut a, shifted.clone());
    let mut two = Vec::new();
    for chunk in shifted.chunks(3) {
        two.extend(run(&mut b, chunk.to_vec()));
        b.advance_to(chunk.last().unwrap().event_time_ns);
    }
    assert_eq!(one, two);
}

#[test]
fn the_example_config_defaults_validate() {
    DetectorConfig::default().validate().unwrap();
    let bad = DetectorConfig {
        sensitive: vec![SensitivePattern_for_test()],
        ..Default::default()
    };
    assert!(bad.validate().is_err());
}

#[allow(non_snake_case)]
fn SensitivePattern_for_test() -> crate::SensitivePattern {
    crate::SensitivePattern {
        name: "broken".into(),
        pattern: "(".into(),
        weight: 1.0,
    }
}

#[test]
fn a_new_edge_inside_a_known_request_is_one_alert_that_names_the_request() {
    let (mut e, t) = learned();
    // cart and db are both known, but cart never called db, in any request.
    let alerts = run(
        &mut e,
        vec![call(t, "cart", "db", "SELECT", "products", "GET /cart")],
    );
    assert_eq!(kinds(&alerts), vec![AlertKind::NewEdge], "{alerts:#?}");
    assert!(alerts[0].evidence.contains_key("entry_calls"));
    assert!(
        alerts[0]
            .summary
            .contains("inside request frontend GET /cart"),
        "{}",
        alerts[0].summary
    );
}
