use super::*;
use eastwest_model::{Entry, Workload};
use proptest::prelude::*;

const SEC: i64 = 1_000_000_000;

fn call(request_id: &str, route: &str, t: i64) -> Call {
    Call {
        event_time_ns: t,
        source: Workload::new("a"),
        destination: Workload::new("b").in_namespace("ns"),
        method: "GET".into(),
        route: route.into(),
        request_id: Some(request_id.into()),
        ..Default::default()
    }
}

#[test]
fn the_same_call_from_spans_and_both_log_lines_counts_once() {
    let mut d = CallDeduper::default();
    assert!(d.admit(&call("r1", "/x", 0), CallOrigin::Spans));
    assert!(!d.admit(&call("r1", "/x", 0), CallOrigin::OutboundLog));
    assert!(
        !d.admit(&call("r1", "/x", 0), CallOrigin::InboundLog),
        "third view of the same call"
    );
    assert!(
        d.admit(&call("r1", "/y", 0), CallOrigin::Spans),
        "another call of the same request"
    );
    let stats = d.stats();
    assert_eq!((stats.admitted, stats.duplicates, stats.entries), (2, 2, 2));
}

#[test]
fn loops_of_identical_calls_count_each_and_pair_up_with_their_other_views() {
    let mut d = CallDeduper::default();
    assert!(d.admit(&call("r2", "/x", 0), CallOrigin::OutboundLog));
    assert!(
        d.admit(&call("r2", "/x", 0), CallOrigin::OutboundLog),
        "second call in a loop"
    );
    assert!(!d.admit(&call("r2", "/x", 0), CallOrigin::InboundLog));
    assert!(!d.admit(&call("r2", "/x", 0), CallOrigin::InboundLog));
    assert!(
        d.admit(&call("r2", "/x", 0), CallOrigin::InboundLog),
        "a third inbound line has no partner left"
    );
}

#[test]
fn trace_and_span_id_match_without_a_request_id() {
    let mut d = CallDeduper::default();
    let mut span_call = call("", "/x", 0);
    span_call.request_id = None;
    span_call.trace_id = "ab".repeat(16).into();
    span_call.span_id = "cd".repeat(8).into();
    let mut log_call = span_call.clone();
    log_call.request_id = Some("r3".into());
    log_call.destination = Workload::new("b"); // named differently, still the same call
    assert!(d.admit(&span_call, CallOrigin::Spans));
    assert!(!d.admit(&log_call, CallOrigin::OutboundLog));
    // The log copy's request id is now linked to the group: the inbound line joins too.
    let mut inbound = call("r3", "/x", 0);
    inbound.destination = Workload::new("b");
    assert!(!d.admit(&inbound, CallOrigin::InboundLog));
}

#[test]
fn calls_without_ids_always_count() {
    let mut d = CallDeduper::default();
    let mut c = call("", "/x", 0);
    c.request_id = None;
    assert!(d.admit(&c, CallOrigin::Spans));
    assert!(d.admit(&c, CallOrigin::OutboundLog));
    assert_eq!(d.stats().entries, 0);
}

#[test]
fn entries_are_bounded_and_expire_on_event_time() {
    let mut d = CallDeduper::new(DedupConfig {
        max_entries: 10,
        ..Default::default()
    });
    for i in 0..100 {
        assert!(d.admit(&call(&format!("r{i}"), "/x", 0), CallOrigin::Spans));
    }
    assert_eq!((d.stats().entries, d.stats().evicted), (10, 90));
    assert!(
        d.by_id.len() <= 2 * d.live_ids + super::STALE_SLACK && d.live_ids <= 20,
        "the index shrinks with the groups: {} entries for {} live ids",
        d.by_id.len(),
        d.live_ids
    );

    let mut d = CallDeduper::default();
    assert!(d.admit(&call("old", "/x", 0), CallOrigin::Spans));
    assert!(d.admit(&call("new", "/x", 61 * SEC), CallOrigin::Spans));
    assert_eq!(d.stats().expired, 1);
    assert!(
        d.admit(&call("old", "/x", 0), CallOrigin::OutboundLog),
        "forgotten after the ttl"
    );
    let mut d = CallDeduper::default();
    assert!(d.admit(&call("r", "/x", 0), CallOrigin::Spans));
    d.advance(120 * SEC);
    assert_eq!(d.stats().entries, 0, "advance expires too");
}

#[test]
fn merge_mode_holds_the_first_copy_and_fills_it_from_the_others() {
    let mut d = CallDeduper::new(DedupConfig {
        merge_window: std::time::Duration::from_secs(2),
        ..Default::default()
    });
    let mut log = call("r4", "/users/{id}", 10 * SEC);
    log.source.principal = Some("spiffe://cluster.local/ns/ns/sa/a".into());
    log.mtls = Some(true);
    log.response_flags = Some("URX".into());
    let mut span = call("r4", "/users/{id}", 10 * SEC + 1_000);
    span.entry = Some(Entry {
        service: "gw".into(),
        route: "GET /".into(),
    });
    span.weight = 4.0;
    assert!(d.offer(log, CallOrigin::OutboundLog).is_empty(), "held");
    assert!(
        d.offer(span, CallOrigin::Spans).is_empty(),
        "merged, still held"
    );
    assert_eq!(d.stats().held, 1);
    assert!(d.advance(11 * SEC).is_empty(), "window not passed");
    let out = d.advance(12 * SEC);
    assert_eq!(out.len(), 1);
    let merged = &out[0];
    assert_eq!(merged.weight, 4.0, "the span copy is the base");
    assert_eq!(
        merged.entry.as_ref().map(|e| e.service.as_str()),
        Some("gw")
    );
    assert_eq!(
        merged.source.principal.as_deref(),
        Some("spiffe://cluster.local/ns/ns/sa/a")
    );
    assert_eq!(
        (merged.mtls, merged.response_flags.as_deref()),
        (Some(true), Some("URX"))
    );
    assert!(
        d.offer(call("r4", "/users/{id}", 10 * SEC), CallOrigin::InboundLog)
            .is_empty(),
        "late copy dropped"
    );
    let stats = d.stats();
    assert_eq!(
        (stats.admitted, stats.duplicates, stats.merged, stats.held),
        (1, 2, 1, 0)
    );
    let mut no_id = call("", "/x", 0);
    no_id.request_id = None;
    assert_eq!(
        d.offer(no_id, CallOrigin::Spans).len(),
        1,
        "nothing to merge with: emitted at once"
    );
    assert!(
        d.offer(call("r5", "/x", 20 * SEC), CallOrigin::Spans)
            .is_empty()
    );
    assert_eq!(d.flush().len(), 1);
}

#[test]
fn evicting_a_held_call_releases_it() {
    let mut d = CallDeduper::new(DedupConfig {
        max_entries: 1,
        merge_window: std::time::Duration::from_secs(5),
        ..Default::default()
    });
    assert!(d.offer(call("a", "/x", 0), CallOrigin::Spans).is_empty());
    let out = d.offer(call("b", "/x", 0), CallOrigin::Spans);
    assert_eq!(
        out.iter()
            .map(|c| c.request_id.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("a")]
    );
    assert_eq!(d.flush().len(), 1);
    assert_eq!(d.stats().held, 0);
}

#[test]
fn config_is_validated() {
    assert!(DedupConfig::default().validate().is_ok());
    assert!(
        DedupConfig {
            max_entries: 0,
            ..Default::default()
        }
        .validate()
        .is_err()
    );
    let bad = DedupConfig {
        merge_window: std::time::Duration::from_secs(120),
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    let parsed: DedupConfig = toml::from_str("ttl = \"30s\"\nmerge_window = \"2s\"").unwrap();
    assert_eq!(parsed.ttl, std::time::Duration::from_secs(30));
}

proptest! {
    /// Whatever the copies, every call is emitted exactly once in merge mode: admitted
    /// count = calls released, nothing is lost, memory stays within the bound.
    #[test]
    fn merge_mode_emits_each_admitted_call_exactly_once(
        copies in proptest::collection::vec((0u8..6, 0u8..3, 0i64..200), 0..200),
    ) {
        let config = DedupConfig { max_entries: 16, merge_window: std::time::Duration::from_secs(3), ttl: std::time::Duration::from_secs(20) };
        let mut d = CallDeduper::new(config);
        let mut emitted = 0usize;
        for (rid, origin, t) in copies {
            let origin = [CallOrigin::Spans, CallOrigin::OutboundLog, CallOrigin::InboundLog][origin as usize];
            emitted += d.offer(call(&format!("r{rid}"), "/x", t * SEC / 4), origin).len();
            emitted += d.advance(t * SEC / 4 - 5 * SEC).len();
            prop_assert!(d.stats().entries <= 16);
        }
        emitted += d.flush().len();
        prop_assert_eq!(emitted as u64, d.stats().admitted);
    }
}

#[test]
fn ids_of_forgotten_groups_neither_match_nor_pile_up() {
    let mut d = CallDeduper::new(DedupConfig {
        max_entries: 4,
        ..Default::default()
    });
    for round in 0..50 {
        for i in 0..8 {
            let c = call(&format!("r{i}"), "/x", 0);
            // Each id was evicted since it was last seen (8 ids, 4 groups kept): a copy
            // from an origin its forgotten group already had still counts.
            assert!(d.admit(&c, CallOrigin::Spans), "round {round}, id {i}");
            assert!(
                !d.admit(&c, CallOrigin::OutboundLog),
                "round {round}, id {i}"
            );
            assert!(
                d.by_id.len() <= 2 * d.live_ids + super::STALE_SLACK,
                "{} index entries for {} live ids",
                d.by_id.len(),
                d.live_ids
            );
        }
    }
    assert_eq!(d.stats().entries, 4);
}
