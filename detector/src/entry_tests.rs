//! A request entering the mesh at a workload that was only ever called from inside it.

use eastwest_model::{AlertKind, Entry};

use super::tests::{call, learned, run};

const SEC: i64 = 1_000_000_000;

fn entering_at(service: &str, t: i64) -> eastwest_model::Call {
    let mut c = call(t, service, "redis", "GET", "cart", "");
    c.entry = Some(Entry {
        service: service.into(),
        route: "GET /cart/{id}".into(),
    });
    c
}

#[test]
fn a_request_entering_at_an_internal_service_is_a_context_anomaly() {
    let (mut engine, t) = learned();
    // cart received ~360 calls from the frontend in learning and never started a request.
    let alerts = run(&mut engine, vec![entering_at("cart", t + SEC)]);
    let a = alerts
        .iter()
        .find(|a| a.kind == AlertKind::ContextAnomaly)
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert_eq!(a.evidence["scope"], "entry");
}

#[test]
fn a_new_route_at_the_real_entry_is_not_an_entry_anomaly() {
    let (mut engine, t) = learned();
    let mut c = call(
        t + SEC,
        "frontend",
        "cart",
        "GET",
        "/cart/{id}",
        "GET /basket",
    );
    c.entry = Some(Entry {
        service: "frontend".into(),
        route: "GET /basket".into(),
    });
    let alerts = run(&mut engine, vec![c]);
    assert!(
        alerts
            .iter()
            .all(|a| a.evidence.get("scope").is_none_or(|s| s != "entry")),
        "{alerts:#?}"
    );
}
