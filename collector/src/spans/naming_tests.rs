//! What a call says, from the spans seen so far: the identity the callee observed,
//! names resolved to known workloads, raw paths matched to known templates.

use eastwest_model::{Call, Workload};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};

use super::attributes::test_support::kv;
use super::{NormalizerConfig, SpanNormalizer};
use crate::accesslog::AccessLogFields;
use crate::dedup::CallOrigin;

const MS: u64 = 1_000_000;
const BASE: u64 = 1_700_000_000_000_000_000;

use SpanKind::{Client, Server};

/// One span of trace `trace`; ids are per trace.
pub(super) struct Sp {
    trace: u8,
    id: u8,
    pub(super) parent: Option<u8>,
    kind: SpanKind,
    resource: Vec<KeyValue>,
    attrs: Vec<KeyValue>,
}

pub(super) fn workload(service: &str, ns: &str) -> Vec<KeyValue> {
    vec![kv("service.name", service), kv("k8s.namespace.name", ns)]
}

pub(super) fn client(trace: u8, resource: Vec<KeyValue>, attrs: Vec<KeyValue>) -> Sp {
    Sp {
        trace,
        id: 1,
        parent: None,
        kind: Client,
        resource,
        attrs,
    }
}

pub(super) fn server(trace: u8, resource: Vec<KeyValue>, attrs: Vec<KeyValue>) -> Sp {
    Sp {
        trace,
        id: 2,
        parent: Some(1),
        kind: Server,
        resource,
        attrs,
    }
}

pub(super) fn request(spans: Vec<Sp>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: spans
            .into_iter()
            .map(|s| ResourceSpans {
                resource: Some(Resource {
                    attributes: s.resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![s.trace; 16],
                        span_id: vec![s.id; 8],
                        parent_span_id: s.parent.map(|p| vec![p; 8]).unwrap_or_default(),
                        kind: s.kind as i32,
                        name: "op".into(),
                        start_time_unix_nano: BASE + u64::from(s.trace) * 10 * MS,
                        end_time_unix_nano: BASE + u64::from(s.trace) * 10 * MS + 5 * MS,
                        attributes: s.attrs,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Pushes each request in turn (one per trace), then flushes; calls by trace.
pub(super) fn run(traces: Vec<Vec<Sp>>) -> (Vec<Call>, SpanNormalizer) {
    let mut n = SpanNormalizer::new(NormalizerConfig::default());
    let mut calls = Vec::new();
    for spans in traces {
        calls.extend(n.push(&request(spans)));
    }
    calls.extend(n.flush());
    calls.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    (calls, n)
}

pub(super) fn call_of(calls: &[Call], trace: u8) -> &Call {
    let id = format!("{:032x}", u128::from_be_bytes([trace; 16]));
    calls
        .iter()
        .find(|c| c.trace_id == id)
        .unwrap_or_else(|| panic!("no call of trace {trace} in {calls:#?}"))
}

const CART: &str = "spiffe://cluster.local/ns/shop/sa/cart";
const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";

#[test]
fn the_identity_the_callee_observed_wins_over_a_forged_claim() {
    for key in [
        "source.principal",
        "downstream_peer.principal",
        "connection.uri_san_peer_certificate",
        "client_id",
    ] {
        // cart's pod forges frontend's name and principal on its client span.
        let (calls, _) = run(vec![vec![
            client(
                1,
                workload("frontend", "shop"),
                vec![
                    kv("http.request.method", "POST"),
                    kv("server.address", "payments"),
                    kv("source.principal", FRONTEND),
                ],
            ),
            server(
                1,
                workload("payments", "shop"),
                vec![
                    kv("http.request.method", "POST"),
                    kv("http.route", "/charge"),
                    kv(key, CART),
                ],
            ),
        ]]);
        let call = call_of(&calls, 1);
        assert_eq!(call.source.key(), "frontend.shop", "{key}");
        assert_eq!(call.source.principal.as_deref(), Some(CART), "{key}");
        assert_eq!(call.claimed_principal.as_deref(), Some(FRONTEND), "{key}");
        assert_eq!(call.mtls, Some(true), "a SPIFFE peer means mTLS");
    }
}

#[test]
fn an_agreeing_or_unobserved_claim_stands_alone() {
    let pair = |server_attrs: Vec<KeyValue>| {
        let mut attrs = vec![kv("http.request.method", "GET"), kv("http.route", "/x")];
        attrs.extend(server_attrs);
        run(vec![vec![
            client(
                1,
                workload("cart", "shop"),
                vec![
                    kv("http.request.method", "GET"),
                    kv("source.principal", CART),
                ],
            ),
            server(1, workload("payments", "shop"), attrs),
        ]])
        .0
    };
    let agreeing = pair(vec![kv("source.principal", CART)]);
    assert_eq!(agreeing[0].source.principal.as_deref(), Some(CART));
    assert_eq!(agreeing[0].claimed_principal, None);
    let unobserved = pair(vec![]);
    assert_eq!(unobserved[0].source.principal.as_deref(), Some(CART));
    assert_eq!(unobserved[0].claimed_principal, None);
    // Linkerd's identity format names the workload of an unattributed caller too.
    let (calls, _) = run(vec![vec![Sp {
        parent: Some(9),
        ..server(
            1,
            workload("web", "emojivoto"),
            vec![
                kv("http.request.method", "GET"),
                kv("http.route", "/x"),
                kv(
                    "client_id",
                    "vote-bot.emojivoto.serviceaccount.identity.linkerd.cluster.local",
                ),
            ],
        )
    }]]);
    assert_eq!(calls[0].source.key(), "vote-bot.emojivoto");
}

/// frontend (shop) → foo-service (shop), answered: the callee's spans name it and its
/// route template.
fn answered(trace: u8) -> Vec<Sp> {
    vec![
        client(
            trace,
            workload("frontend", "shop"),
            vec![
                kv("http.request.method", "GET"),
                kv("url.full", "http://foo-service:8080/api/v1/x/items/Paris"),
                kv("server.address", "foo-service"),
            ],
        ),
        server(
            trace,
            [
                workload("foo-service", "shop"),
                vec![kv("k8s.pod.ip", "10.1.2.3")],
            ]
            .concat(),
            vec![
                kv("http.request.method", "GET"),
                kv("http.route", "/api/v1/x/items/{city}"),
            ],
        ),
    ]
}

/// A client span nobody answered (a timeout), from `ns`, with `attrs`.
fn unanswered(trace: u8, ns: &str, attrs: Vec<KeyValue>) -> Vec<Sp> {
    let mut all = vec![
        kv("http.request.method", "GET"),
        kv("url.path", "/api/v1/x/items/New%20York"),
    ];
    all.extend(attrs);
    vec![client(trace, workload("frontend", ns), all)]
}

#[test]
fn an_unanswered_call_by_any_spelling_of_the_callee_reaches_its_workload() {
    let spellings = [
        vec![kv("server.address", "foo-service")],
        vec![
            kv("server.address", "foo-service"),
            kv("server.port", "8080"),
        ],
        vec![kv("net.peer.name", "foo-service.shop")],
        vec![kv("server.address", "foo-service.shop.svc")],
        vec![kv("server.address", "foo-service.shop.svc.cluster.local")],
        vec![kv("peer.service", "foo-service")],
        vec![kv(
            "url.full",
            "http://foo-service:8080/api/v1/x/items/New%20York",
        )],
        vec![kv(
            "upstream_cluster",
            "outbound|8080||foo-service.shop.svc.cluster.local",
        )],
        vec![kv("server.address", "10.1.2.3")],
        vec![kv("network.peer.address", "10.1.2.3")],
    ];
    let mut traces = vec![answered(1)];
    for (i, attrs) in spellings.iter().enumerate() {
        traces.push(unanswered(10 + i as u8, "shop", attrs.clone()));
    }
    let (calls, n) = run(traces);
    for (i, attrs) in spellings.iter().enumerate() {
        let call = call_of(&calls, 10 + i as u8);
        assert_eq!(call.destination.key(), "foo-service.shop", "{attrs:?}");
        assert_eq!(call.route, "/api/v1/x/items/{city}", "{attrs:?}");
    }
    assert!(n.stats().peer_names > 0 && n.stats().route_templates == 1);
}

#[test]
fn names_that_resolve_nowhere_stay_distinct_peers() {
    let (calls, _) = run(vec![
        answered(1),
        unanswered(2, "shop", vec![kv("server.address", "bar-service")]),
        // A bare name from another namespace is that namespace's service.
        unanswered(3, "prod", vec![kv("server.address", "foo-service")]),
        unanswered(
            4,
            "shop",
            vec![kv("server.address", "foo-service.dev.svc.cluster.local")],
        ),
        unanswered(5, "shop", vec![kv("server.address", "10.9.9.9")]),
    ]);
    assert_eq!(call_of(&calls, 2).destination.key(), "bar-service");
    assert_eq!(call_of(&calls, 3).destination.key(), "foo-service");
    assert_eq!(call_of(&calls, 4).destination.key(), "foo-service.dev");
    assert_eq!(call_of(&calls, 5).destination.key(), "10.9.9.9");
    // Unmatched raw paths are templated by their look.
    assert_eq!(call_of(&calls, 2).route, "/api/v1/x/items/{name}");
}

#[test]
fn a_service_name_learned_from_a_pair_names_later_unanswered_calls() {
    let reviews = |trace: u8, answered: bool| {
        let mut spans = vec![client(
            trace,
            workload("productpage", "shop"),
            vec![
                kv("http.request.method", "GET"),
                kv("server.address", "reviews"),
                kv("url.path", "/reviews/1"),
            ],
        )];
        if answered {
            spans.push(server(
                trace,
                workload("reviews-v2", "shop"),
                vec![
                    kv("http.request.method", "GET"),
                    kv("http.route", "/reviews/{id}"),
                ],
            ));
        }
        spans
    };
    let (calls, _) = run(vec![reviews(1, true), reviews(2, false)]);
    assert_eq!(call_of(&calls, 2).destination.key(), "reviews-v2.shop");
    assert_eq!(call_of(&calls, 2).route, "/reviews/{id}");
}

#[test]
fn raw_paths_take_the_template_of_the_route_they_reach() {
    // Requests rejected before routing: the server span has the raw path only.
    let rejected = |trace: u8, path: &str| {
        vec![
            client(
                trace,
                workload("frontend", "shop"),
                vec![kv("http.request.method", "GET")],
            ),
            server(
                trace,
                workload("foo-service", "shop"),
                vec![
                    kv("http.request.method", "GET"),
                    kv("url.path", path),
                    kv("http.response.status_code", "401"),
                ],
            ),
        ]
    };
    let paths = [
        "/api/v1/x/items/New%20York",
        "/api/v1/x/items/Paris",
        "/api/v1/x/items/Rio%20de%20Janeiro?x=1",
        "//api/v1/x/./items/Lyon;v=1",
        "/api/v1/x/items/%4Cyon",
    ];
    let mut traces = vec![answered(1)];
    for (i, p) in paths.iter().enumerate() {
        traces.push(rejected(10 + i as u8, p));
    }
    let sensitive = ["/%61dmin/users", "/admin;x=1/users", "/a/../admin/users"];
    for (i, p) in sensitive.iter().enumerate() {
        traces.push(rejected(30 + i as u8, p));
    }
    let (calls, _) = run(traces);
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(
            call_of(&calls, 10 + i as u8).route,
            "/api/v1/x/items/{city}",
            "{p}"
        );
    }
    for (i, p) in sensitive.iter().enumerate() {
        assert_eq!(call_of(&calls, 30 + i as u8).route, "/admin/users", "{p}");
    }
}

#[test]
fn a_raw_entry_path_names_the_entry_by_its_template() {
    let root = Sp {
        id: 5,
        parent: None,
        ..server(
            2,
            workload("frontend", "shop"),
            vec![
                kv("http.request.method", "GET"),
                kv("url.path", "/product/OLJCESPC7Z"),
            ],
        )
    };
    let inner = Sp {
        parent: Some(5),
        ..client(
            2,
            workload("frontend", "shop"),
            vec![
                kv("http.request.method", "GET"),
                kv("server.address", "foo-service"),
                kv("url.path", "/api/v1/x/items/Paris"),
            ],
        )
    };
    let learned = Sp {
        id: 7,
        parent: None,
        ..server(
            1,
            workload("frontend", "shop"),
            vec![
                kv("http.request.method", "GET"),
                kv("http.route", "/product/{id}"),
            ],
        )
    };
    let (calls, _) = run(vec![vec![learned], answered(3), vec![root, inner]]);
    let entry = call_of(&calls, 2).entry.clone().expect("entry");
    assert_eq!(
        (entry.service.as_str(), entry.route.as_str()),
        ("frontend", "GET /product/{id}")
    );
}

#[test]
fn access_log_calls_are_named_like_span_calls() {
    let (_, mut n) = run(vec![answered(1)]);
    let fields = AccessLogFields {
        start_time: Some("2024-05-01T10:00:00Z".into()),
        method: Some("GET".into()),
        path: Some("/api/v1/x/items/New%20York".into()),
        authority: Some("foo-service:8080".into()),
        ..Default::default()
    };
    let (mut call, origin) = fields
        .into_call(&Workload::new("frontend").in_namespace("shop"), 0)
        .unwrap();
    assert_eq!(origin, CallOrigin::OutboundLog);
    assert_eq!(call.destination.key(), "foo-service");
    n.name_logged_call(&mut call, origin);
    assert_eq!(call.destination.key(), "foo-service.shop");
    assert_eq!(call.route, "/api/v1/x/items/{city}");
}
