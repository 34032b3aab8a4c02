use super::*;
use eastwest_model::{Entry, Workload};
use std::time::Duration;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SEC;

fn call(t: i64, src: &str, dst: &str, route: &str) -> Call {
    Call {
        event_time_ns: t,
        source: Workload::new(src).in_namespace("shop"),
        destination: Workload::new(dst).in_namespace("shop"),
        method: "GET".into(),
        route: route.into(),
        weight: 1.0,
        entry: Some(Entry {
            service: "frontend".into(),
            route: "GET /".into(),
        }),
        ..Default::default()
    }
}

fn feed(b: &mut Baseline, c: &Call) {
    b.advance(c.event_time_ns);
    b.observe(c);
}

#[test]
fn ending_learning_before_any_call_shows_no_end_time() {
    let mut b = Baseline::new(BaselineConfig::default());
    b.end_learning(0);
    let status = b.status(0);
    assert_eq!(status.state, LearningPhase::Detecting);
    assert_eq!(status.learning_started, None);
    assert_eq!(status.learning_ends, None, "not 1970");
}

#[test]
fn a_callee_s_inbound_calls_are_counted_whatever_their_mtls_status() {
    let mut b = Baseline::new(BaselineConfig::default());
    for i in 0..4 {
        let mut c = call(T0 + i * SEC, "a", "leaf", "/x");
        c.mtls = (i == 0).then_some(true);
        feed(&mut b, &c);
    }
    let w = b.working();
    let leaf = w.id("leaf.shop").unwrap();
    assert!(w.source(leaf).is_none(), "it never called out");
    let inbound = w.inbound_tls(leaf).unwrap();
    assert_eq!((inbound.calls, inbound.mtls_calls), (4.0, 1.0));
}

#[test]
fn learning_ends_after_period_then_detects() {
    let mut b = Baseline::new(BaselineConfig {
        learning_period: Duration::from_secs(60),
        ..Default::default()
    });
    assert_eq!(b.state(), LearningState::Empty);
    feed(&mut b, &call(T0, "a", "b", "/x"));
    assert!(b.is_learning());
    assert!(!b.advance(T0 + 59 * SEC));
    assert!(b.advance(T0 + 60 * SEC));
    assert_eq!(
        b.state(),
        LearningState::Detecting {
            since_ns: T0 + 60 * SEC,
            learning_started_ns: T0,
        }
    );
    assert_eq!(b.working().edge_count(), 1);
    // The dashboard shows when learning started after it ended, not a blank.
    let status = b.status(T0 + 61 * SEC);
    assert_eq!(status.state, LearningPhase::Detecting);
    assert_eq!(
        status.learning_started,
        Some(eastwest_model::format_event_time(T0))
    );
    assert_eq!(
        status.learning_ends,
        Some(eastwest_model::format_event_time(T0 + 60 * SEC))
    );
}

#[test]
fn a_snapshot_from_before_the_learning_start_was_kept_still_loads() {
    let old: LearningState = serde_json::from_str(r#"{"state":"detecting","since_ns":5}"#).unwrap();
    assert_eq!(
        old,
        LearningState::Detecting {
            since_ns: 5,
            learning_started_ns: 0
        }
    );
}

#[test]
fn a_watermark_never_starts_learning_and_the_period_runs_from_the_first_call() {
    let mut b = Baseline::new(BaselineConfig {
        learning_period: Duration::from_secs(60),
        ..Default::default()
    });
    // Watermarks ahead of any call (pairs still pending): learning has not started.
    assert!(!b.advance_watermark(T0 + 30 * SEC));
    assert_eq!(b.state(), LearningState::Empty);
    feed(&mut b, &call(T0, "a", "b", "/x"));
    assert_eq!(
        b.state(),
        LearningState::Learning {
            started_ns: T0,
            until_ns: T0 + 60 * SEC
        }
    );
    assert!(!b.advance_watermark(T0 + 59 * SEC));
    assert!(b.advance_watermark(T0 + 60 * SEC));
    assert!(!b.is_learning());
}

#[test]
fn weights_are_honoured_and_errors_counted() {
    let mut b = Baseline::new(BaselineConfig::default());
    let mut c = call(T0, "a", "b", "/x");
    c.weight = 4.0;
    c.error = true;
    feed(&mut b, &c);
    feed(&mut b, &call(T0 + SEC, "a", "b", "/x"));
    let w = b.working();
    let s = w.edge(w.edge_key("a.shop", "b.shop").unwrap()).unwrap();
    assert_eq!(
        (s.calls, s.errors, s.first_seen_ns, s.last_seen_ns),
        (5.0, 4.0, T0, T0 + SEC)
    );
}

#[test]
fn caps_stop_learning_and_count_overflow() {
    let cfg = BaselineConfig {
        max_edges: 2,
        max_endpoints: 3,
        max_contexts: 4,
        ..Default::default()
    };
    let mut b = Baseline::new(cfg);
    for i in 0..50 {
        feed(
            &mut b,
            &call(T0 + i, "a", &format!("dst{i}"), &format!("/r{i}")),
        );
    }
    for i in 0..50 {
        feed(
            &mut b,
            &call(T0 + 100 + i, "a", "dst0", &format!("/flood{i}")),
        );
    }
    let w = b.working();
    assert_eq!(w.edge_count(), 2);
    assert!(w.endpoint_count() <= 3);
    assert!(w.context_count() <= 4);
    assert!(b.overflow_count() >= 48 + 48);
}

#[test]
fn rollout_of_known_workload_reported_once_with_new_endpoints() {
    let mut b = Baseline::new(BaselineConfig {
        learning_period: Duration::from_secs(10),
        ..Default::default()
    });
    let mut c = call(T0, "cart", "db", "/q");
    c.source_version = Some("v1".into());
    feed(&mut b, &c);
    b.end_learning(T0 + SEC);
    for i in 0..100 {
        let mut c = call(
            T0 + 2 * SEC + i,
            "cart",
            "db",
            if i % 2 == 0 { "/q" } else { "/new" },
        );
        c.source_version = Some("v2".into());
        feed(&mut b, &c);
    }
    let changes = b.rollout_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].workload.as_str(), changes[0].version.as_str()),
        ("cart.shop", "v2")
    );
    assert_eq!((changes[0].new_edges, changes[0].new_endpoints), (0, 1));
    assert_eq!(b.status(T0 + 3 * SEC).rollout_changes.len(), 1);
    // v2 inherited v1's baseline: same identity key, one edge.
    assert_eq!(b.working().edge_count(), 1);
}

#[test]
fn retention_ages_out_unseen_entries() {
    let cfg = BaselineConfig {
        retention: Duration::from_secs(3600),
        ..Default::default()
    };
    let mut b = Baseline::new(cfg);
    feed(&mut b, &call(T0, "a", "old", "/x"));
    feed(&mut b, &call(T0 + 7200 * SEC, "a", "new", "/y"));
    let w = b.working();
    assert_eq!(w.edge_count(), 1);
    assert_eq!(w.endpoint_count(), 1);
    assert_eq!(w.context_count(), 2);
    assert!(w.edge(w.edge_key("a.shop", "new.shop").unwrap()).is_some());
}

#[test]
fn with_a_wall_clock_retention_follows_it_not_event_time() {
    let cfg = BaselineConfig {
        retention: Duration::from_secs(3600),
        ..Default::default()
    };
    let mut b = Baseline::new(cfg);
    b.set_wall_clock(T0 + 600 * SEC);
    feed(&mut b, &call(T0, "a", "old", "/x"));
    // A call stamped two hours ahead closes windows but ages out nothing: by the wall
    // clock `old` was seen ten minutes ago.
    feed(&mut b, &call(T0 + 7200 * SEC, "a", "new", "/y"));
    assert_eq!(b.working().edge_count(), 2);
    // Once the wall clock itself passes retention, it goes.
    b.set_wall_clock(T0 + 7300 * SEC);
    feed(&mut b, &call(T0 + 7300 * SEC, "a", "new", "/y"));
    assert_eq!(b.working().edge_count(), 1);
}

#[test]
fn retention_ages_out_callers_entries_and_identities_with_their_edges() {
    let cfg = BaselineConfig {
        retention: Duration::from_secs(3600),
        ..Default::default()
    };
    let mut b = Baseline::new(cfg);
    let mut old = call(T0, "gone", "b", "/x");
    old.source.principal = Some("spiffe://cluster.local/ns/shop/sa/gone".into());
    old.entry = Some(Entry {
        service: "batch".into(),
        route: "GET /nightly".into(),
    });
    feed(&mut b, &old);
    feed(&mut b, &call(T0 + 600 * SEC, "a", "b", "/x"));
    feed(&mut b, &call(T0 + 600 * SEC, "a", "c", "/x"));
    feed(&mut b, &call(T0 + 3000 * SEC, "a", "b", "/x"));
    assert_eq!(b.working().source_count(), 2);
    // Past retention for `gone` and for a → c; a → b is seen again.
    feed(&mut b, &call(T0 + 5000 * SEC, "a", "b", "/x"));
    let w = b.working();
    assert_eq!(w.source_count(), 1, "the caller of aged-out edges stays");
    let a = w.id("a.shop").unwrap();
    assert!(w.source(a).is_some());
    assert_eq!(w.source(a).unwrap().callees.len(), 1, "a → c aged out");
    assert!(w.id("gone.shop").and_then(|g| w.identity(g)).is_none());
    assert!(
        w.principal_workloads("spiffe://cluster.local/ns/shop/sa/gone")
            .is_none_or(|ws| ws.is_empty())
    );
    assert_eq!(w.entries.len(), 1, "only the entry of the live contexts");
}

#[test]
fn accepted_alert_call_joins_baseline() {
    let mut b = Baseline::new(BaselineConfig::default());
    feed(&mut b, &call(T0, "a", "b", "/x"));
    let now = chrono::DateTime::from_timestamp_nanos(T0 + SEC);
    let alert = eastwest_model::Alert {
        id: "1".into(),
        kind: eastwest_model::AlertKind::NewEndpoint,
        severity: eastwest_model::Severity::Medium,
        score: 3.0,
        source: Workload::new("a").in_namespace("shop"),
        destination: Some(Workload::new("b").in_namespace("shop")),
        method: Some("POST".into()),
        route: Some("/admin".into()),
        entry: None,
        first_seen: now,
        last_seen: now,
        count: 2,
        trace_ids: vec![],
        incident_id: None,
        summary: String::new(),
        evidence: Default::default(),
        state: Default::default(),
    };
    b.accept_alert(&alert);
    let index = b.working();
    let key = EndpointKey {
        edge: index.edge_key("a.shop", "b.shop").unwrap(),
        method: index.id("POST").unwrap(),
        route: index.id("/admin").unwrap(),
    };
    assert_eq!(index.endpoint(key).map(|s| s.calls), Some(2.0));

    // Accepting a plaintext alert teaches plaintext on its edge.
    let plaintext = eastwest_model::Alert {
        id: "2".into(),
        kind: eastwest_model::AlertKind::Plaintext,
        ..alert
    };
    b.accept_alert(&plaintext);
    let w = b.working();
    let edge = w.edge(w.edge_key("a.shop", "b.shop").unwrap()).unwrap();
    assert_eq!((edge.mtls_calls, edge.plaintext_calls), (0.0, 2.0));
}

#[test]
fn config_validation_rejects_zero_caps() {
    assert!(BaselineConfig::default().validate().is_ok());
    assert!(
        BaselineConfig {
            max_edges: 0,
            ..Default::default()
        }
        .validate()
        .is_err()
    );
}

#[test]
fn names_of_aged_out_rows_are_compacted_away() {
    let cfg = BaselineConfig {
        retention: Duration::from_secs(60),
        window: Duration::from_secs(60),
        ..Default::default()
    };
    let mut b = Baseline::new(cfg);
    // A churning route per second: every route ages out a minute later.
    let n = 20_000;
    for i in 0..n {
        feed(&mut b, &call(T0 + i * SEC, "a", "b", &format!("/r/{i}")));
    }
    let w = b.working();
    assert!(w.endpoint_count() <= 121, "{}", w.endpoint_count());
    assert!(
        w.names().len() < 8_192,
        "{} names kept for {} endpoints",
        w.names().len(),
        w.endpoint_count()
    );
    // The ids were reissued consistently: the newest route is still known.
    let last = call(T0 + (n - 1) * SEC, "a", "b", &format!("/r/{}", n - 1));
    let keys = w.call_keys(&last);
    assert!(keys.endpoint.and_then(|k| w.endpoint(k)).is_some());
    assert!(keys.entry.and_then(|e| w.entry_calls(e)).is_some());
}

#[test]
fn principals_per_workload_are_capped() {
    let mut b = Baseline::new(BaselineConfig::default());
    for i in 0..(MAX_PRINCIPALS_PER_WORKLOAD + 10) {
        let mut c = call(T0 + i as i64, "a", "b", "/x");
        c.source.principal = Some(format!("spiffe://cluster.local/ns/shop/sa/a{i}").into());
        feed(&mut b, &c);
    }
    let w = b.working();
    let id = w.identity(w.id("a.shop").unwrap()).unwrap();
    assert_eq!(id.principals.len(), MAX_PRINCIPALS_PER_WORKLOAD);
    assert_eq!(b.overflow_count(), 10);
    assert!(
        w.principal_workloads("spiffe://cluster.local/ns/shop/sa/a0")
            .is_some()
    );
    assert!(w.id("spiffe://cluster.local/ns/shop/sa/a70").is_none());
}

proptest::proptest! {
    /// The detector reads an endpoint's context under an entry as proof that the edge is
    /// known under that entry too (`CallStats`): learning, the context cap and ageing keep
    /// that true, and the edge's context counts at least the endpoint's calls.
    #[test]
    fn an_endpoint_context_implies_its_edge_context(
        steps in proptest::collection::vec((0u8..3, 0u8..3, 0u8..4, 0u8..3, 0i64..3), 1..60),
        max_contexts in 1usize..12,
    ) {
        let mut b = Baseline::new(BaselineConfig {
            retention: Duration::from_secs(3600),
            max_contexts,
            ..Default::default()
        });
        let mut t = T0;
        for (src, dst, route, entry, gap) in steps {
            // Gaps of 0, 20 min or 2 h of event time: some steps age rows out.
            t += [0, 1200, 7200][gap as usize] * SEC;
            let mut c = call(t, &format!("s{src}"), &format!("d{dst}"), &format!("/r{route}"));
            c.entry = Some(Entry { service: "frontend".into(), route: format!("GET /{entry}").into() });
            feed(&mut b, &c);
            let index = b.working();
            for row in index.endpoints.iter() {
                for (entry, endpoint_context) in row.contexts() {
                    let edge_context = index.edge_context(entry, row.key.edge);
                    proptest::prop_assert!(edge_context.is_some_and(|e| e.calls >= endpoint_context.calls));
                }
            }
        }
    }
    /// The learner keeps each destination's inbound counts (calls, mTLS) call by call;
    /// they stay what the edges sum to (the form a restore or an ageing pass derives
    /// them in).
    #[test]
    fn inbound_tls_is_the_sum_of_the_destinations_edges(
        steps in proptest::collection::vec((0u8..3, 0u8..3, 0u8..3, 0i64..3), 1..60),
    ) {
        let mut b = Baseline::new(BaselineConfig {
            retention: Duration::from_secs(3600),
            ..Default::default()
        });
        let mut t = T0;
        for (src, dst, tls, gap) in steps {
            t += [0, 1200, 7200][gap as usize] * SEC;
            let mut c = call(t, &format!("s{src}"), &format!("d{dst}"), "/x");
            c.mtls = [None, Some(true), Some(false)][tls as usize];
            feed(&mut b, &c);
            let mut derived = b.working().clone();
            derived.derive_inbound_tls();
            proptest::prop_assert_eq!(&derived.inbound_tls, &b.working().inbound_tls);
        }
    }
}
