//! Load-aware rates: a surge of the requests that use an edge explains its rate, however
//! unevenly the surge is spread over request types; one source reading a known endpoint
//! many times more per request still spikes.

use eastwest_model::AlertKind;

use super::tests::{call, learned_with_config, request};
use super::*;

const SEC: i64 = 1_000_000_000;
const MINUTES: i64 = 10;

/// Traffic no request entry explains (a batch job), the same in learning and after: it
/// keeps the mesh-wide surge factor from explaining a surge of one request type.
fn background(t: i64, n: usize) -> Vec<Call> {
    (0..n)
        .map(|i| Call {
            entry: None,
            ..call(t + 3 + i as i64, "batch", "db", "SELECT", "jobs", "")
        })
        .collect()
}

/// An engine that learned the mesh of [`super::tests::learned`] plus the background.
fn learned(config: DetectorConfig) -> (Engine, i64) {
    learned_with_config(config, |t, _| background(t, 10))
}

/// `cart_per_product` cart requests per product request, for [`MINUTES`] after `t`; each
/// cart request makes `reads` calls from cart to redis.
fn traffic(t: i64, cart_per_product: i64, reads: usize) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut at = t;
    while at < t + MINUTES * 60 * SEC {
        calls.extend(request(at, "GET /product"));
        calls.extend(background(at, 20));
        for i in 0..cart_per_product {
            let start = at + i * (10 * SEC / cart_per_product);
            calls.push(call(
                start,
                "frontend",
                "cart",
                "GET",
                "/cart/{id}",
                "GET /cart",
            ));
            for r in 0..reads {
                calls.push(call(
                    start + 1 + r as i64,
                    "cart",
                    "redis",
                    "GET",
                    "cart",
                    "GET /cart",
                ));
            }
        }
        at += 10 * SEC;
    }
    calls
}

fn rate_spikes(engine: &mut Engine, calls: Vec<Call>, end: i64) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for c in &calls {
        alerts.extend(engine.process(c).alerts);
    }
    alerts.extend(engine.advance_to(end + 120 * SEC).alerts);
    alerts.retain(|a| a.kind == AlertKind::RateSpike);
    alerts
}

#[test]
fn a_surge_of_one_request_type_does_not_spike_the_edges_it_uses() {
    let (mut engine, t) = learned(DetectorConfig::default());
    // Cart requests ×6, product requests and the batch job unchanged: the mesh-wide
    // surge is only ~×1.2.
    let alerts = rate_spikes(&mut engine, traffic(t, 6, 1), t + MINUTES * 60 * SEC);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn reading_a_known_endpoint_twenty_times_per_request_spikes() {
    let (mut engine, t) = learned(DetectorConfig::default());
    let alerts = rate_spikes(&mut engine, traffic(t, 1, 20), t + MINUTES * 60 * SEC);
    assert!(
        alerts.iter().any(|a| a.source.service == "cart"
            && a.destination.as_ref().is_some_and(|d| d.service == "redis")),
        "{alerts:#?}"
    );
}

#[test]
fn without_load_awareness_the_uneven_surge_would_spike() {
    // The control: the same surge with load-aware rates off does raise `rate_spike`, so
    // the first test's silence is the load factor's doing.
    let config = DetectorConfig {
        max_load_factor: 1.0,
        ..Default::default()
    };
    let (mut engine, t) = learned(config);
    let alerts = rate_spikes(&mut engine, traffic(t, 6, 1), t + MINUTES * 60 * SEC);
    assert!(!alerts.is_empty());
}
