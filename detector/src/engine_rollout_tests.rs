use std::collections::BTreeSet;
use std::time::Duration;

use eastwest_model::{Alert, AlertKind, Call, Severity};

use super::super::tests::{SEC, call, kinds, learned_with_config, run};
use super::super::{DetectorConfig, Engine};

/// An engine whose baseline saw `cart` at version v1 (calling redis in every request,
/// 12 calls a minute).
fn learned_with_versions() -> (Engine, i64) {
    learned_with_versions_and(DetectorConfig::default())
}

fn learned_with_versions_and(config: DetectorConfig) -> (Engine, i64) {
    learned_with_config(config, |t, _| {
        vec![versioned(
            call(t + 4, "cart", "redis", "GET", "cart", "GET /cart"),
            "v1",
        )]
    })
}

fn versioned(mut c: Call, version: &str) -> Call {
    c.source_version = Some(version.into());
    c
}

/// What cart v2 newly calls: endpoints on its known edge to redis and one new edge.
fn rollout_calls(t: i64) -> Vec<Call> {
    let mut calls: Vec<Call> = ["SET", "DEL", "EXPIRE", "HGET", "HSET"]
        .iter()
        .enumerate()
        .map(|(i, op)| call(t + i as i64 * SEC, "cart", "redis", op, "cart", "GET /cart"))
        .collect();
    calls.push(call(
        t + 6 * SEC,
        "cart",
        "pricing",
        "GET",
        "/prices/{id}",
        "GET /cart",
    ));
    calls.into_iter().map(|c| versioned(c, "v2")).collect()
}

/// cart's usual call to redis every 5 s over `[from, to)`, per version in turn.
fn usual(from: i64, to: i64, versions: &[&str]) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut t = from;
    let mut i = 0;
    while t < to {
        let v = versions[i % versions.len()];
        calls.push(versioned(
            call(t, "cart", "redis", "GET", "cart", "GET /cart"),
            v,
        ));
        t += 5 * SEC;
        i += 1;
    }
    calls
}

/// Runs calls and then advances to `until`, returning every alert emitted (flushes too).
fn run_until(e: &mut Engine, calls: Vec<Call>, until: i64) -> Vec<Alert> {
    let mut alerts = run(e, calls);
    alerts.extend(e.advance_to(until).alerts);
    alerts
}

/// The latest state of each alert emitted, by id.
fn latest(alerts: Vec<Alert>) -> Vec<Alert> {
    let mut by_id = std::collections::BTreeMap::new();
    for a in alerts {
        by_id.insert(a.id.clone(), a);
    }
    by_id.into_values().collect()
}

fn merged(mut a: Vec<Call>, b: Vec<Call>) -> Vec<Call> {
    a.extend(b);
    a.sort_by_key(|c| c.event_time_ns);
    a
}

#[test]
fn a_confirmed_rollout_is_one_info_notice_and_is_learned() {
    let (mut e, t) = learned_with_versions();
    // v2 replaces v1: from `t` on only v2 calls, including what it newly calls.
    let calls = merged(usual(t, t + 240 * SEC, &["v2"]), rollout_calls(t + SEC));
    let alerts = latest(run_until(&mut e, calls, t + 240 * SEC));
    let (notices, others): (Vec<Alert>, Vec<Alert>) = alerts
        .into_iter()
        .partition(|a| a.severity == Severity::Info);
    assert_eq!(
        notices.len(),
        1,
        "one notice, not one alert per endpoint: {notices:#?}"
    );
    let notice = &notices[0];
    assert_eq!(notice.evidence["rollout_version"], "v2");
    assert_eq!(notice.evidence["new_endpoints"], 5);
    assert!(
        notice.summary.contains("rolled out version v2")
            && notice
                .summary
                .contains("confirmed: the other versions' calls fell from 12.0"),
        "{}",
        notice.summary
    );
    // Held calls are folded at a window boundary after the evidence, not at their time.
    assert!(notice.first_seen.timestamp_nanos_opt().unwrap() > t + 120 * SEC);
    // A new edge is never folded: the call to pricing alerts on its own, at once.
    assert_eq!(kinds(&others), vec![AlertKind::NewEdge]);
    let changes = e.baseline().rollout_changes();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].confirmed, "{:?}", changes[0]);
    assert_eq!(changes[0].introduced.len(), 5);
    // Learned: the same endpoints again raise nothing.
    let mut again = rollout_calls(t + 300 * SEC);
    again.pop();
    assert!(run(&mut e, again).is_empty());
}

#[test]
fn a_forged_version_beside_the_running_one_is_not_a_rollout_and_alerts() {
    let (mut e, t) = learned_with_versions();
    // v1 keeps all its traffic; one pod claims "v9" and adds its own volume on top.
    let normal = usual(t, t + 900 * SEC, &["v1"]);
    let mut forged = usual(t + 2 * SEC, t + 900 * SEC, &["v9", "v9", "v9"]);
    forged.extend(
        rollout_calls(t + 3 * SEC)
            .into_iter()
            .take(5)
            .map(|c| versioned(c, "v9")),
    );
    let alerts = latest(run_until(&mut e, merged(normal, forged), t + 900 * SEC));
    assert!(
        alerts.iter().all(|a| a.severity != Severity::Info),
        "no notice for a version string: {alerts:#?}"
    );
    let endpoints: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::NewEndpoint)
        .collect();
    assert_eq!(endpoints.len(), 5, "{alerts:#?}");
    for a in endpoints {
        // Released when the evidence window ended, but with the call's own time.
        assert!(a.first_seen.timestamp_nanos_opt().unwrap() < t + 10 * SEC);
    }
    let changes = e.baseline().rollout_changes();
    assert!(
        changes.iter().all(|c| !c.confirmed),
        "a version string alone is no rollout: {changes:?}"
    );
    // Not learned: the same endpoint still alerts (as an update of its alert).
    let again = versioned(
        call(t + 1000 * SEC, "cart", "redis", "SET", "cart", "GET /cart"),
        "v1",
    );
    assert_eq!(
        kinds(&run(&mut e, vec![again])),
        vec![AlertKind::NewEndpoint]
    );
}

#[test]
fn a_rollout_folds_at_most_its_cap_and_never_sensitive_calls() {
    let (mut e, t) = learned_with_versions_and(DetectorConfig {
        rollout_max_folded: 3,
        ..Default::default()
    });
    let mut calls = merged(usual(t, t + 240 * SEC, &["v2"]), rollout_calls(t + SEC));
    calls.push(versioned(
        call(
            t + 8 * SEC,
            "cart",
            "users",
            "DELETE",
            "/admin/users/{id}",
            "GET /cart",
        ),
        "v2",
    ));
    calls.sort_by_key(|c| c.event_time_ns);
    let alerts = latest(run_until(&mut e, calls, t + 240 * SEC));
    let notice = alerts
        .iter()
        .find(|a| a.severity == Severity::Info)
        .expect("a notice");
    assert_eq!(notice.evidence["new_endpoints"], 3, "{notice:#?}");
    let endpoints = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::NewEndpoint && a.severity != Severity::Info)
        .count();
    assert_eq!(endpoints, 2, "beyond the cap they alert: {alerts:#?}");
    assert!(kinds(&alerts).contains(&AlertKind::SensitiveEndpoint));
}

#[test]
fn high_findings_are_never_held_for_a_rollout() {
    let (mut e, t) = learned_with_versions();
    let c = versioned(call(t, "cart", "redis", "SCAN", "cart", "GET /cart"), "v2");
    let high = crate::findings::Finding {
        kind: AlertKind::NewEndpoint,
        score: 10.0,
        sensitive: false,
        evidence: Default::default(),
        summary: String::new(),
        destination: None,
        method: None,
        route: None,
        rollout: None,
    };
    let mut low = high.clone();
    low.score = 5.0;
    assert_eq!(
        e.gate_rollout(&c, "cart.shop", &[low]),
        crate::rollout::Gate::Hold
    );
    assert_eq!(
        e.gate_rollout(&c, "cart.shop", &[high]),
        crate::rollout::Gate::Alert
    );
}

#[test]
fn a_rollout_still_alerts_after_its_grace() {
    let (mut e, t) = learned_with_versions();
    run_until(&mut e, usual(t, t + 240 * SEC, &["v2"]), t + 240 * SEC);
    assert!(e.baseline().rollout_changes()[0].confirmed);
    // Past the grace period v2 is the workload's normal: novelty alerts one by one again.
    let late = t + 2 * 3600 * SEC;
    let alerts = run(
        &mut e,
        vec![versioned(
            call(late, "cart", "redis", "SCAN", "cart", "GET /cart"),
            "v2",
        )],
    );
    assert_eq!(kinds(&alerts), vec![AlertKind::NewEndpoint]);
    assert_ne!(alerts[0].severity, Severity::Info);
}

#[test]
fn without_rollout_grace_every_novelty_of_a_new_version_alerts_at_once() {
    let (mut e, t) = learned_with_versions_and(DetectorConfig {
        rollout_grace: Duration::ZERO,
        ..Default::default()
    });
    run(&mut e, usual(t, t + SEC, &["v2"]));
    let alerts = run(&mut e, rollout_calls(t + SEC));
    let ids: BTreeSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), 6, "{alerts:#?}");
}

#[test]
fn rollout_decisions_do_not_depend_on_batching() {
    let (mut a, t) = learned_with_versions();
    let (mut b, _) = learned_with_versions();
    let normal = usual(t, t + 900 * SEC, &["v1"]);
    let forged: Vec<Call> = rollout_calls(t + SEC)
        .into_iter()
        .take(5)
        .map(|c| versioned(c, "v9"))
        .collect();
    let calls = merged(normal, forged);
    let one = latest(run_until(&mut a, calls.clone(), t + 900 * SEC));
    let mut two = Vec::new();
    for chunk in calls.chunks(7) {
        two.extend(run(&mut b, chunk.to_vec()));
        two.extend(b.advance_to(chunk.last().unwrap().event_time_ns).alerts);
    }
    two.extend(b.advance_to(t + 900 * SEC).alerts);
    assert_eq!(one, latest(two));
}
