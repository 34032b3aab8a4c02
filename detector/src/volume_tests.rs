//! `volume_spike`: a known endpoint called at its usual rate, answering far more per
//! call, alerts; its usual sizes, jitter included, do not.

use eastwest_model::AlertKind;

use super::tests::{call, learned_with};
use super::*;

const SEC: i64 = 1_000_000_000;

fn read(t: i64, i: usize, bytes: u64) -> Call {
    Call {
        response_bytes: Some(bytes + (i as u64 * 37) % 400),
        request_bytes: Some(200),
        ..call(t + 2, "orders", "users", "GET", "/users", "GET /cart")
    }
}

fn volume_alerts(response_bytes: u64) -> Vec<Alert> {
    let (mut engine, t) = learned_with(|t, i| vec![read(t, i, 2_000)]);
    let mut alerts = Vec::new();
    for i in 0..120 {
        let at = t + i * 5 * SEC;
        alerts.extend(engine.process(&read(at, i as usize, response_bytes)).alerts);
    }
    alerts.extend(engine.advance_to(t + 800 * SEC).alerts);
    alerts.retain(|a| a.kind == AlertKind::VolumeSpike);
    alerts
}

#[test]
fn a_known_endpoint_answering_seventy_times_more_per_call_is_a_volume_spike() {
    let alerts = volume_alerts(140_000);
    let a = alerts.first().expect("a volume_spike");
    assert_eq!(a.route.as_deref(), Some("/users"));
    // The first window still holds some calls of the usual size.
    assert!(a.evidence["ratio"].as_f64().unwrap() > 20.0, "{a:#?}");
}

#[test]
fn the_usual_sizes_are_not_a_volume_spike() {
    assert!(volume_alerts(2_000).is_empty());
}
