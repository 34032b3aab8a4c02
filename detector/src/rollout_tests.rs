use std::time::Duration;

use eastwest_model::{AlertKind, Call, Workload};

use super::*;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
/// A window boundary, so window arithmetic in the tests is plain.
const T0: i64 = 28_333_334 * MIN;

fn rollouts() -> (Rollouts, DetectorConfig) {
    let config = DetectorConfig::default();
    (Rollouts::new(Duration::from_secs(60), &config), config)
}

fn call(t: i64, version: &str, route: &str) -> Call {
    Call {
        event_time_ns: t,
        source: Workload::new("cart").in_namespace("shop"),
        destination: Workload::new("redis").in_namespace("shop"),
        method: "GET".into(),
        route: route.into(),
        source_version: Some(version.into()),
        trace_id: format!("{t:032x}").into(),
        weight: 1.0,
        ..Default::default()
    }
}

fn novelty() -> Vec<Finding> {
    vec![Finding {
        kind: AlertKind::NewEndpoint,
        score: 5.0,
        sensitive: false,
        evidence: Default::default(),
        summary: "new".into(),
        destination: None,
        method: None,
        route: None,
        rollout: None,
    }]
}

/// Three pods' traffic for `minutes` from `from`: `per_pod` calls a minute each, pod
/// `i` running `versions[i]`. Counted and advanced minute by minute.
fn feed(
    r: &mut Rollouts,
    config: &DetectorConfig,
    from: i64,
    minutes: i64,
    per_pod: i64,
    versions: [&str; 3],
) -> Vec<Resolution> {
    let mut out = Vec::new();
    for m in 0..minutes {
        for k in 0..per_pod {
            for (pod, v) in versions.iter().enumerate() {
                let t = from + m * MIN + k * (MIN / per_pod) + pod as i64;
                out.extend(r.advance(t, config));
                r.count(&call(t, v, "/get"), "cart.shop", true, config);
            }
        }
    }
    out
}

fn confirmed(out: &[Resolution]) -> Option<&Evidence> {
    out.iter().find_map(|r| match r {
        Resolution::Confirmed { evidence, .. } => Some(evidence),
        Resolution::Refuted { .. } => None,
    })
}

#[test]
fn pods_of_the_new_version_replacing_the_old_confirm_it() {
    let (mut r, config) = rollouts();
    feed(&mut r, &config, T0, 10, 4, ["v1", "v1", "v1"]);
    // A rolling update: one pod a minute.
    let mut out = feed(&mut r, &config, T0 + 10 * MIN, 1, 4, ["v2", "v1", "v1"]);
    out.extend(feed(
        &mut r,
        &config,
        T0 + 11 * MIN,
        1,
        4,
        ["v2", "v2", "v1"],
    ));
    assert!(
        confirmed(&out).is_none(),
        "not while the old version still runs"
    );
    out.extend(feed(
        &mut r,
        &config,
        T0 + 12 * MIN,
        4,
        4,
        ["v2", "v2", "v2"],
    ));
    let evidence = confirmed(&out).expect("confirmed");
    assert_eq!(evidence.old_before, 12.0);
    assert_eq!(evidence.old_after, 0.0);
    assert_eq!(evidence.new_after, 12.0);
}

#[test]
fn one_pod_relabelling_itself_is_not_a_rollout_however_loud() {
    let (mut r, config) = rollouts();
    feed(&mut r, &config, T0, 10, 4, ["v1", "v1", "v1"]);
    let h = r.gate(
        &call(T0 + 10 * MIN, "v9", "/new"),
        "cart.shop",
        "v9",
        T0 + 10 * MIN,
        &novelty(),
        &config,
    );
    assert_eq!(h, Gate::Hold);
    // The forging pod claims v9 and sends 50× its share; the two others stay on v1.
    let mut out = Vec::new();
    for m in 0..12 {
        out.extend(feed(
            &mut r,
            &config,
            T0 + (10 + m) * MIN,
            1,
            4,
            ["v1", "v1", "v9"],
        ));
        for k in 0..200 {
            let t = T0 + (10 + m) * MIN + k * (MIN / 200) + 7;
            r.count(&call(t, "v9", "/get"), "cart.shop", true, &config);
        }
    }
    assert!(confirmed(&out).is_none());
    let refuted: Vec<&Vec<Held>> = out
        .iter()
        .filter_map(|r| match r {
            Resolution::Refuted { held } => Some(held),
            Resolution::Confirmed { .. } => None,
        })
        .collect();
    assert_eq!(refuted.len(), 1, "{out:?}");
    assert_eq!(refuted[0].len(), 1);
    assert_eq!(refuted[0][0].call.route, "/new");
    // Refuted for good: its later novelty alerts at once.
    let later = call(T0 + 30 * MIN, "v9", "/other");
    assert_eq!(
        r.gate(
            &later,
            "cart.shop",
            "v9",
            T0 + 10 * MIN,
            &novelty(),
            &config
        ),
        Gate::Alert
    );
}

#[test]
fn too_little_traffic_confirms_nothing() {
    let (mut r, config) = rollouts();
    // One call every two minutes: 5 calls over the lookback, under the minimum.
    for m in (0..10).step_by(2) {
        let t = T0 + m * MIN;
        r.advance(t, &config);
        r.count(&call(t, "v1", "/get"), "cart.shop", true, &config);
    }
    let out = feed(&mut r, &config, T0 + 10 * MIN, 12, 1, ["v2", "v2", "v2"]);
    assert!(confirmed(&out).is_none(), "{out:?}");
}

#[test]
fn repeats_of_a_held_call_add_up_and_a_version_holds_at_most_its_cap() {
    let (mut r, mut config) = rollouts();
    config.rollout_max_folded = 2;
    feed(&mut r, &config, T0, 10, 4, ["v1", "v1", "v1"]);
    let first = T0 + 10 * MIN;
    for i in 0..5 {
        let c = call(first + i * SEC, "v2", "/same");
        assert_eq!(
            r.gate(&c, "cart.shop", "v2", first, &novelty(), &config),
            Gate::Hold
        );
    }
    let c = call(first + 9 * SEC, "v2", "/second");
    assert_eq!(
        r.gate(&c, "cart.shop", "v2", first, &novelty(), &config),
        Gate::Hold
    );
    let c = call(first + 10 * SEC, "v2", "/third");
    assert_eq!(
        r.gate(&c, "cart.shop", "v2", first, &novelty(), &config),
        Gate::Alert
    );
    let out = feed(&mut r, &config, first, 4, 4, ["v2", "v2", "v2"]);
    let held = out
        .iter()
        .find_map(|r| match r {
            Resolution::Confirmed { held, .. } => Some(held),
            Resolution::Refuted { .. } => None,
        })
        .expect("confirmed");
    assert_eq!(held.len(), 2);
    assert_eq!((held[0].count, held[0].weight), (5, 5.0));
    assert_eq!(held[0].trace_ids.len(), 5);
    // Confirmed, the version folds until its cap, counting what it held.
    let c = call(first + 5 * MIN, "v2", "/fourth");
    assert_eq!(
        r.gate(&c, "cart.shop", "v2", first, &novelty(), &config),
        Gate::Alert
    );
}

#[test]
fn an_evidence_window_past_without_a_decision_never_holds() {
    let (mut r, config) = rollouts();
    let first = T0;
    let late = call(first + 11 * MIN, "v2", "/x");
    assert_eq!(
        r.gate(&late, "cart.shop", "v2", first, &novelty(), &config),
        Gate::Alert
    );
}
