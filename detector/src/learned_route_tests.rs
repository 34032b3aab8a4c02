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

/// Kinds of the alerts one lookup of `path`, a second after learning, raises.
fn kinds_after(engine_and_end: (crate::Engine, i64), path: &str) -> Vec<AlertKind> {
    let (mut engine, t) = engine_and_end;
    let lookup = call(t + SEC, "frontend", "inventory", "GET", path, "GET /cart");
    run(&mut engine, vec![lookup])
        .iter()
        .map(|a| a.kind)
        .collect()
}

#[test]
fn below_the_threshold_a_new_value_is_a_new_endpoint() {
    // The control for the test below: nine values are not a parameter.
    let learned = learned_with(lookups_of(9));
    assert!(
        learned
            .0
            .baseline()
            .working()
            .learned_templates()
            .is_empty()
    );
    let kinds = kinds_after(learned, "/stock/berlin");
    assert!(kinds.contains(&AlertKind::NewEndpoint), "{kinds:?}");
}

#[test]
fn a_new_value_of_a_learned_parameter_is_not_a_new_endpoint() {
    let learned = learned_with(city_lookups);
    let templates = learned.0.baseline().working().learned_templates();
    assert!(
        templates
            .iter()
            .any(|(_, d, m, r)| d.starts_with("inventory") && m == "GET" && r == "/stock/{param}"),
        "{templates:?}"
    );
    let kinds = kinds_after(learned, "/stock/berlin");
    assert!(kinds.is_empty(), "{kinds:?}");
}

#[test]
fn a_new_literal_beside_the_parameter_is_still_new() {
    let kinds = kinds_after(learned_with(city_lookups), "/export/all");
    assert!(kinds.contains(&AlertKind::NewEndpoint), "{kinds:?}");
}

#[test]
fn a_sensitive_value_is_judged_as_written() {
    let kinds = kinds_after(learned_with(city_lookups), "/stock/admin");
    assert!(kinds.contains(&AlertKind::SensitiveEndpoint), "{kinds:?}");
}
