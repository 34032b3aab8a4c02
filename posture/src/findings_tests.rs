use eastwest_detector::default_sensitive_patterns;

use super::*;
use crate::observe::SeenPrincipal;

fn ep(src: &str, dst: &str, route: &str) -> ObservedEndpoint {
    ObservedEndpoint {
        source: src.into(),
        source_service: src.into(),
        source_namespace: Some("shop".into()),
        destination: dst.into(),
        destination_service: dst.into(),
        destination_namespace: Some("shop".into()),
        method: "GET".into(),
        route: route.into(),
        protocol: "http".into(),
        calls: 10,
        mtls_calls: 10,
        trace_ids: vec![format!("trace-{src}-{dst}")],
        ..Default::default()
    }
}

/// web → cart → users (admin endpoint), web → catalog; db and an IP outside the mesh;
/// five mesh workloads in all (plus `ops`, which calls the admin endpoint too).
fn mesh() -> Observations {
    let mut db = ep("cart", "redis", "GET");
    db.protocol = "db".into();
    db.destination_namespace = None;
    db.anonymous_calls = 10;
    let mut ip = ep("catalog", "203.0.113.7", "/v1/export");
    ip.destination_namespace = None;
    ip.destination_address = Some("203.0.113.7:443".into());
    ip.plaintext_calls = 4;
    ip.mtls_calls = 0;
    ip.plaintext_trace_ids = vec!["pt-1".into()];
    let mut anon = ep("ops", "users", "/admin/users/{id}");
    anon.anonymous_calls = 10;
    Observations {
        endpoints: vec![
            ep("web", "cart", "/cart"),
            ep("web", "catalog", "/products"),
            ep("cart", "users", "/admin/users/{id}"),
            ep("cart", "users", "/users/{id}"),
            anon,
            db,
            ip,
        ],
        principals: vec![
            SeenPrincipal {
                workload: "web".into(),
                principal: "spiffe://c/ns/shop/sa/default".into(),
                calls: 20,
            },
            SeenPrincipal {
                workload: "cart".into(),
                principal: "spiffe://c/ns/shop/sa/default".into(),
                calls: 20,
            },
            SeenPrincipal {
                workload: "catalog".into(),
                principal: "spiffe://c/ns/shop/sa/catalog".into(),
                calls: 10,
            },
        ],
        alerted_edges: BTreeSet::new(),
    }
}

fn sensitive() -> Sensitive {
    Sensitive::new(&default_sensitive_patterns()).unwrap()
}

fn radius<'a>(p: &'a Posture, w: &str) -> &'a BlastRadius {
    p.blast_radius.iter().find(|r| r.workload == w).unwrap()
}

fn finding<'a>(p: &'a Posture, kind: FindingKind, subject: &str) -> &'a Finding {
    p.findings
        .iter()
        .find(|f| f.kind == kind && f.subject == subject)
        .unwrap_or_else(|| panic!("no {kind:?} finding on {subject}: {:#?}", p.findings))
}

#[test]
fn blast_radius_follows_observed_edges_and_counts_sensitive_endpoints() {
    let p = analyze(&mesh(), &sensitive());
    assert_eq!(p.summary.workloads, 5, "web cart catalog users ops");
    let web = radius(&p, "web");
    // Default-allow: the 4 other mesh workloads and the admin endpoint (weight 6).
    assert_eq!(web.default_allow.workloads, 4);
    assert_eq!(web.default_allow.sensitive_endpoints, 1);
    assert_eq!(web.default_allow.score, 10.0);
    // Observed: cart, catalog, users (through cart); the admin endpoint through cart.
    assert_eq!(web.least_privilege.workloads, 3);
    assert_eq!(web.least_privilege.sensitive_endpoints, 1);
    assert_eq!(web.least_privilege.score, 9.0);
    assert!((web.cut - 0.1).abs() < 1e-9);
    assert_eq!(web.sensitive_reached, ["admin users GET /admin/users/{id}"]);
    let catalog = radius(&p, "catalog");
    assert_eq!(
        catalog.least_privilege.workloads, 0,
        "an IP outside the mesh is no workload"
    );
    assert_eq!(catalog.least_privilege.score, 0.0);
    assert!((catalog.cut - 1.0).abs() < 1e-9);
    let f = finding(&p, FindingKind::BlastRadius, "web");
    assert_eq!(f.severity, Severity::High, "reaches an admin endpoint");
    assert!(
        f.explanation.contains("reaches 3 of 4 other workloads"),
        "{}",
        f.explanation
    );
    assert_eq!(f.evidence.trace_ids[0], "trace-cart-users");
}

#[test]
fn an_alerted_edge_is_left_out_of_least_privilege_but_not_of_what_was_observed() {
    let mut obs = mesh();
    obs.alerted_edges.insert(("cart".into(), "users".into()));
    let p = analyze(&obs, &sensitive());
    let web = radius(&p, "web");
    assert_eq!(web.observed.workloads, 3);
    assert_eq!(web.least_privilege.workloads, 2);
    assert_eq!(web.least_privilege.sensitive_endpoints, 0);
    assert_eq!(p.summary.alerted_edges, 1);
    let f = finding(&p, FindingKind::BlastRadius, "web");
    assert!(
        f.explanation.contains("would add 1 more workload"),
        "{}",
        f.explanation
    );
}

#[test]
fn identities_plaintext_exposure_and_egress_are_named_with_their_numbers() {
    let p = analyze(&mesh(), &sensitive());
    let shared = finding(
        &p,
        FindingKind::SharedServiceAccount,
        "spiffe://c/ns/shop/sa/default",
    );
    assert_eq!(shared.severity, Severity::Medium);
    assert!(
        shared
            .explanation
            .contains("used by 2 workloads (cart, web) on 40 calls")
    );
    assert!(
        !p.findings
            .iter()
            .any(|f| f.subject == "spiffe://c/ns/shop/sa/catalog"),
        "one workload per principal is no finding"
    );

    let plain = finding(&p, FindingKind::Plaintext, "catalog");
    assert!(
        plain
            .explanation
            .contains("made 4 of its 10 calls (40.0 %) in plaintext"),
        "{}",
        plain.explanation
    );
    assert_eq!(plain.evidence.trace_ids, ["pt-1"]);

    let anon = finding(&p, FindingKind::NoIdentity, "ops");
    assert!(
        anon.explanation
            .contains("on 10 of its 10 calls inside the mesh")
    );
    // cart's calls to redis (outside the mesh) carry no principal: no finding for that.
    assert!(
        !p.findings
            .iter()
            .any(|f| f.kind == FindingKind::NoIdentity && f.subject == "cart")
    );

    let admin = finding(
        &p,
        FindingKind::SensitiveExposure,
        "users GET /admin/users/{id}",
    );
    // Called by cart and ops; reachable from web (through cart), cart and ops.
    assert_eq!(admin.evidence.numbers["direct_callers"], 2);
    assert_eq!(admin.evidence.numbers["reaching_workloads"], 3);
    assert_eq!(admin.severity, Severity::Medium);

    let ip = finding(&p, FindingKind::LeavesMesh, "203.0.113.7");
    assert_eq!(ip.severity, Severity::High);
    assert!(
        ip.explanation.contains("bare IP address"),
        "{}",
        ip.explanation
    );
    assert!(ip.explanation.contains("4 of them in plaintext"));
    let db = finding(&p, FindingKind::LeavesMesh, "redis");
    assert_eq!(db.severity, Severity::Low);
    assert!(db.explanation.contains("a database outside the mesh"));

    // Ranked: severities never increase down the list, ranks are 1..=n.
    for (i, pair) in p.findings.windows(2).enumerate() {
        assert!(pair[0].severity >= pair[1].severity, "{pair:#?}");
        assert_eq!(pair[0].rank, i + 1);
    }
}

#[test]
fn cloud_metadata_reached_is_critical() {
    let mut obs = mesh();
    let mut md = ep("users", "169.254.169.254", "/latest/meta-data/iam");
    md.destination_namespace = None;
    obs.endpoints.push(md);
    let p = analyze(&obs, &sensitive());
    assert_eq!(
        finding(&p, FindingKind::BlastRadius, "web").severity,
        Severity::Critical
    );
    assert_eq!(p.findings[0].severity, Severity::Critical);
}

#[test]
fn an_invalid_pattern_is_refused() {
    let bad = SensitivePattern {
        name: "broken".into(),
        pattern: "(".into(),
        weight: 1.0,
    };
    assert!(matches!(
        Sensitive::new(&[bad]),
        Err(PostureError::Pattern { .. })
    ));
}
