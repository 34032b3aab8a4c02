use std::time::Duration;

use eastwest_baseline::{Baseline, BaselineConfig};
use eastwest_model::{AlertKind, Call, Severity, Workload};

use crate::{DetectorConfig, Engine};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SEC;

fn w(service: &str) -> Workload {
    Workload::new(service).in_namespace("shop")
}

fn call(t: i64, source: Workload, dst: &str, route: &str) -> Call {
    Call {
        event_time_ns: t,
        source,
        destination: w(dst),
        method: "GET".into(),
        route: route.into(),
        status: Some(200),
        trace_id: format!("{t:032x}").into(),
        weight: 1.0,
        ..Default::default()
    }
}

/// 1 h of learning: frontend calls cart and payments, cart calls redis; `leaf` only
/// ever receives calls (from frontend); every caller is attributed.
fn learned() -> (Engine, i64) {
    let mut e = Engine::new(
        DetectorConfig::default(),
        Baseline::new(BaselineConfig {
            learning_period: Duration::from_secs(3600),
            ..Default::default()
        }),
    );
    let mut t = T0;
    while t < T0 + 3600 * SEC {
        for c in [
            call(t, w("frontend"), "cart", "/cart"),
            call(t + 1, w("cart"), "redis", "/get"),
            call(t + 2, w("frontend"), "payments", "/charge"),
            call(t + 3, w("frontend"), "leaf", "/render"),
        ] {
            e.process(&c);
        }
        t += 10 * SEC;
    }
    e.advance_to(t);
    assert!(!e.baseline().is_learning());
    (e, t)
}

fn unattributed() -> Workload {
    Workload::new(crate::UNATTRIBUTED_SERVICE)
}

#[test]
fn a_leaf_workload_s_first_outbound_call_is_a_strong_new_edge() {
    let (mut e, t) = learned();
    let out = e.process(&call(t, w("leaf"), "payments", "/refund"));
    assert!(!out.learned, "an alerted call is not learned");
    let alert = out
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::NewEdge)
        .expect("a new_edge alert");
    // 360 calls received, none made: p = 1/362.
    assert!(alert.score > 5.8, "{alert:?}");
    assert!(alert.severity >= Severity::Low);
    assert_eq!(alert.evidence["leaf_workload"], true);
    assert_eq!(alert.evidence["baseline_received_calls"], 360.0);
    assert!(
        alert.summary.contains("its first outbound call")
            && alert.summary.contains("only received calls (360)"),
        "{}",
        alert.summary
    );
    // Unlike a workload never seen at all, whose first call says little on its own.
    let out = e.process(&call(t + SEC, w("brand-new"), "payments", "/refund"));
    assert!(out.alerts.is_empty(), "{:?}", out.alerts);
}

#[test]
fn an_unattributed_caller_into_an_attributed_destination_alerts_and_is_not_learned() {
    let (mut e, t) = learned();
    let out = e.process(&call(t, unattributed(), "payments", "/charge"));
    assert!(!out.learned);
    let alert = out
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::NewEdge)
        .expect("a new_edge alert");
    assert_eq!(alert.evidence["unattributed_caller"], true);
    assert_eq!(alert.evidence["destination_baseline_calls"], 360.0);
    assert!(
        alert
            .summary
            .starts_with("a caller that cannot be attributed"),
        "{}",
        alert.summary
    );
    assert!(alert.score >= 4.0 + 3.0, "{alert:?}");
    assert!(
        !e.baseline()
            .working()
            .has_callee("unknown", "payments.shop")
    );
}

#[test]
fn an_unattributed_call_that_raises_nothing_is_still_never_learned() {
    let (mut e, t) = learned();
    // A destination the baseline never saw: nothing says it normally has attributed
    // callers, so no finding, but `unknown` must not become its normal caller either.
    let out = e.process(&call(t, unattributed(), "fresh", "/x"));
    assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    assert!(!out.learned);
    assert!(!e.baseline().working().has_callee("unknown", "fresh.shop"));
    // An attributed caller's quiet call is learned as before.
    let out = e.process(&call(t + SEC, w("frontend"), "cart", "/cart"));
    assert!(out.learned);
}

#[test]
fn unattributed_callers_learned_as_normal_are_judged_like_any_caller() {
    let mut e = Engine::new(
        DetectorConfig::default(),
        Baseline::new(BaselineConfig {
            learning_period: Duration::from_secs(600),
            ..Default::default()
        }),
    );
    // An uninstrumented prober reaches /healthz on cart all through learning.
    let mut t = T0;
    while t < T0 + 600 * SEC {
        e.process(&call(t, w("frontend"), "cart", "/cart"));
        e.process(&call(t + 1, unattributed(), "cart", "/healthz"));
        t += 10 * SEC;
    }
    e.advance_to(t);
    let out = e.process(&call(t, unattributed(), "cart", "/healthz"));
    assert!(out.alerts.is_empty() && out.learned, "{:?}", out.alerts);
}
