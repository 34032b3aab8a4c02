use chrono::DateTime;
use eastwest_model::{Alert, AlertKind, Call, Label, Severity, Workload};

use super::*;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SEC;

fn call(t: i64, src: &str, dst: &str, route: &str) -> Call {
    Call {
        event_time_ns: t,
        source: Workload::new(src),
        destination: Workload::new(dst),
        method: "GET".into(),
        route: route.into(),
        ..Default::default()
    }
}

fn alert(id: &str, kind: AlertKind, src: &str, dst: &str, t: i64, severity: Severity) -> Alert {
    Alert {
        id: id.into(),
        kind,
        severity,
        score: 5.0,
        source: Workload::new(src),
        destination: Some(Workload::new(dst)),
        method: None,
        route: None,
        entry: None,
        first_seen: DateTime::from_timestamp_nanos(t),
        last_seen: DateTime::from_timestamp_nanos(t),
        count: 1,
        trace_ids: Vec::new(),
        incident_id: None,
        summary: String::new(),
        evidence: Default::default(),
        state: Default::default(),
    }
}

fn label(class: &str, kind: Option<AlertKind>, src: &str, start: i64, end: i64) -> Label {
    Label {
        scenario: format!("{class}-{src}"),
        kind,
        source: src.into(),
        destination: None,
        method: None,
        route: None,
        start: DateTime::from_timestamp_nanos(start),
        end: DateTime::from_timestamp_nanos(end),
        class: class.into(),
    }
}

#[test]
fn alerts_are_scored_per_label_next_to_the_reference_rules() {
    let detect = T0 + 3600 * SEC;
    let calls = vec![
        call(T0, "a", "b", "/x"),
        call(detect + 10 * SEC, "a", "b", "/x"),
        call(detect + 20 * SEC, "evil", "admin", "/admin"),
        call(detect + 30 * SEC, "a", "b", "/new"),
        call(detect + 40 * SEC, "job", "db", "/q"),
    ];
    let alerts = vec![
        alert(
            "1",
            AlertKind::SensitiveEndpoint,
            "evil",
            "admin",
            detect + 20 * SEC,
            Severity::High,
        ),
        alert(
            "2",
            AlertKind::NewEndpoint,
            "a",
            "b",
            detect + 30 * SEC,
            Severity::Low,
        ),
        alert(
            "3",
            AlertKind::NewEdge,
            "job",
            "db",
            detect + 40 * SEC,
            Severity::Info,
        ),
    ];
    let labels = vec![
        label(
            "attack",
            Some(AlertKind::SensitiveEndpoint),
            "evil",
            detect + 15 * SEC,
            detect + 25 * SEC,
        ),
        label("benign", None, "job", detect + 35 * SEC, detect + 45 * SEC),
    ];
    let report = score(&calls, &alerts, detect, &labels, DEFAULT_SLACK);
    assert!(report.scenarios[0].detected);
    assert_eq!(
        report.scenarios[0].time_to_detect,
        Some(Duration::from_secs(5))
    );
    assert_eq!(report.scenarios[1].notices, 1, "an info alert is a notice");
    assert_eq!(report.scenarios[1].false_alerts, 0);
    // The new endpoint of a → b matches no label: one false alert.
    assert_eq!(report.eastwest.false_alerts, 1);
    assert_eq!(report.eastwest.normal_calls, 3);
    assert_eq!(report.learning_calls, 1);
    // unseen-edge flags evil → admin (detected) and job → db (false); the allowlist also
    // flags a → b /new.
    assert_eq!(report.references[0].detected, 1);
    assert_eq!(report.references[0].false_alerts, 1);
    assert_eq!(report.references[1].false_alerts, 2);
    assert!(
        report
            .to_string()
            .lines()
            .last()
            .unwrap()
            .contains("recall 100.0%")
    );
}
