use super::*;
use crate::testmesh::{SCENARIOS, eval_config, scenario};

#[test]
fn every_attack_is_detected_and_benign_changes_stay_silent() {
    let reports: Vec<EvalReport> = SCENARIOS
        .iter()
        .map(|name| {
            let (calls, labels) = scenario(name, 7);
            evaluate(&calls, &labels, &eval_config())
        })
        .collect();
    let report = EvalReport::merge(reports);
    let text = report.to_string();
    for s in &report.scenarios {
        if s.class == "attack" {
            assert!(s.detected, "{} not detected\n{text}", s.scenario);
        } else {
            assert_eq!(s.false_alerts, 0, "{} raised alerts\n{text}", s.scenario);
        }
    }
    assert_eq!(report.eastwest.false_alerts, 0, "{text}");
    assert!(
        report.eastwest.recall() >= report.references[0].recall(),
        "{text}"
    );
    assert!(text.lines().last().unwrap().contains("recall"), "{text}");
}
