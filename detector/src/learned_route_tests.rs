//! Raw paths on an edge that never reported its route template: a position whose values
//! vary (`/stock/{city}`) is learned as a parameter, so a new value is not a new
//! endpoint, while a sensitive value and a new literal still are.

use eastwest_model::AlertKind;

use super::tests::{SEC, call, learned_with, run};

const CITIES: [&str; 12] = [
    "paris", "lyon", "rome", "oslo", "bern", "riga", "lima", "kiev", "cork", "nice", "graz", "bonn",
];

/// The first `n` cities in turn, two lookups per request, from the frontend to the
/// inventory (raw paths, as an access log or a client without `http.route` records
/// them): enough calls that an unseen endpoint on the edge is surprising.
fn lookups_of(n: usize) -> impl Fn(i64, usize) -> Vec<eastwest_model::Call> {
    move |t, i| {
        let lookup = |k: usize| {
            let path = format!("/stock/{}", CITIES[(2 * i + k) % n]);
            call(
                t + 2 + k as i64,
                "frontend",
                "inventory",
                "GET",
                &path,
                "GET /cart",
            )
        };
        vec![lookup(0), lookup(1)]
    }
}

fn city_lookups(t: i64, i: usize) -> Vec<eastwest_model::Call> {
    lookups_of(CITIES.len())(t, i)
}

#[test]
fn below_the_threshold_a_new_value_is_a_new_endpoint() {
    // The control for the test below: nine values are not a parameter.
    let (mut engine, t) = learned_with(lookups_of(9));
    assert!(engine.baseline().working().learned_templates().is_empty());
    let alerts = run(
        &mut engine,
        vec![call(
            t + SEC,
            "frontend",
            "inventory",
            "GET",
            "/stock/berlin",
            "GET /cart",
        )],
    );
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::NewEndpoint),
        "{alerts:#?}"
    );
}

#[test]
fn a_new_value_of_a_learned_parameter_is_not_a_new_endpoint() {
    let (mut engine, t) = learned_with(city_lookups);
    let templates = engine.baseline().working().learned_templates();
    assert!(
        templates
            .iter()
            .any(|(_, d, m, r)| d.starts_with("inventory") && m == "GET" && r == "/stock/{param}"),
        "{templates:?}"
    );
    let alerts = run(
        &mut engine,
        vec![call(
            t + SEC,
            "frontend",
            "inventory",
            "GET",
            "/stock/berlin",
            "GET /cart",
        )],
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn a_new_literal_beside_the_parameter_is_still_new() {
    let (mut engine, t) = learned_with(city_lookups);
    let alerts = run(
        &mut engine,
        vec![call(
            t + SEC,
            "frontend",
            "inventory",
            "GET",
            "/export/all",
            "GET /cart",
        )],
    );
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::NewEndpoint),
        "{alerts:#?}"
    );
}

#[test]
fn a_sensitive_value_is_judged_as_written() {
    let (mut engine, t) = learned_with(city_lookups);
    let alerts = run(
        &mut engine,
        vec![call(
            t + SEC,
            "frontend",
            "inventory",
            "GET",
            "/stock/admin",
            "GET /cart",
        )],
    );
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == AlertKind::SensitiveEndpoint),
        "{alerts:#?}"
    );
}
