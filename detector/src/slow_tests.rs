//! Low and slow: a source that reaches one new callee at a time escalates one incident
//! whose score rises with the count, instead of raising unrelated lows.

use eastwest_model::{AlertKind, Incident};

use super::tests::{call, learned};
use super::*;

const SEC: i64 = 1_000_000_000;
const CALLEES: [&str; 6] = ["payments", "users", "orders", "shipping", "email", "ads"];

#[test]
fn new_callees_one_every_fifteen_minutes_escalate_one_incident() {
    let (mut engine, t) = learned();
    let mut alerts = Vec::new();
    let mut incidents: Vec<Incident> = Vec::new();
    for (i, callee) in CALLEES.iter().enumerate() {
        let at = t + (i as i64) * 15 * 60 * SEC;
        let out = engine.process(&call(at, "cart", callee, "GET", "/items", "GET /cart"));
        alerts.extend(out.alerts);
        incidents.extend(out.incidents);
    }
    let new_edges: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::NewEdge)
        .collect();
    assert_eq!(new_edges.len(), CALLEES.len(), "{alerts:#?}");
    let first = new_edges[0].incident_id.clone().expect("grouped");
    assert!(
        new_edges
            .iter()
            .all(|a| a.incident_id.as_ref() == Some(&first)),
        "one incident for the whole sequence: {new_edges:#?}"
    );
    let last = incidents
        .iter()
        .rev()
        .find(|i| i.id == first)
        .expect("the incident was emitted");
    let strongest = new_edges.iter().map(|a| a.score).fold(0.0, f64::max);
    assert!(last.score > strongest + 3.0, "{last:#?}");
    assert!(last.severity > new_edges[0].severity, "{last:#?}");
    assert!(last.summary.contains("6 workloads"), "{}", last.summary);
}

#[test]
fn new_callees_hours_apart_are_separate_incidents() {
    let (mut engine, t) = learned();
    let a = engine.process(&call(t, "cart", "payments", "GET", "/items", "GET /cart"));
    let b = engine.process(&call(
        t + 3 * 3600 * SEC,
        "cart",
        "users",
        "GET",
        "/items",
        "GET /cart",
    ));
    let id = |out: &EngineOutput| out.alerts[0].incident_id.clone();
    assert_ne!(id(&a), id(&b));
}
