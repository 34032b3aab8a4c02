//! Pairing rules, one fixture per convention.

use eastwest_model::{Call, Protocol, Workload};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use proptest::prelude::*;

use super::attributes::test_support::{kv, kv_int};
use super::{NormalizerConfig, SpanNormalizer};

const T: u8 = 7;
const MS: u64 = 1_000_000;
const BASE: u64 = 1_700_000_000_000_000_000;

struct S {
    id: u8,
    parent: Option<u8>,
    kind: SpanKind,
    at_ms: u64,
    service: &'static str,
    resource: Vec<KeyValue>,
    attrs: Vec<KeyValue>,
    trace_state: &'static str,
}

fn span(
    id: u8,
    parent: Option<u8>,
    kind: SpanKind,
    at_ms: u64,
    service: &'static str,
    attrs: Vec<KeyValue>,
) -> S {
    S {
        id,
        parent,
        kind,
        at_ms,
        service,
        resource: vec![],
        attrs,
        trace_state: "",
    }
}

fn request(spans: Vec<S>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: spans
            .into_iter()
            .map(|s| {
                let mut resource = vec![kv("service.name", s.service)];
                resource.extend(s.resource);
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: resource,
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span {
                            trace_id: vec![T; 16],
                            span_id: vec![s.id; 8],
                            parent_span_id: s.parent.map(|p| vec![p; 8]).unwrap_or_default(),
                            kind: s.kind as i32,
                            name: "op".into(),
                            start_time_unix_nano: BASE + s.at_ms * MS,
                            end_time_unix_nano: BASE + s.at_ms * MS + 5 * MS,
                            attributes: s.attrs,
                            trace_state: s.trace_state.into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect(),
    }
}

/// Pushes everything (in the given order, one batch per span) and flushes.
fn run(spans: Vec<S>) -> Vec<Call> {
    let mut n = SpanNormalizer::new(NormalizerConfig::default());
    let mut calls = Vec::new();
    for s in spans {
        calls.extend(n.push(&request(vec![s])));
    }
    calls.extend(n.flush());
    calls.sort_by_key(|c| c.event_time_ns);
    calls
}

fn edges(calls: &[Call]) -> Vec<(String, String, String, String)> {
    calls
        .iter()
        .map(|c| {
            (
                c.source.key().to_string(),
                c.destination.key().to_string(),
                c.method.to_string(),
                c.route.to_string(),
            )
        })
        .collect()
}

fn e(s: &str, d: &str, m: &str, r: &str) -> (String, String, String, String) {
    (s.into(), d.into(), m.into(), r.into())
}

use SpanKind::{Client, Consumer, Producer, Server};

#[test]
fn plain_sdk_client_server_pair_with_current_conventions_and_entry() {
    let calls = run(vec![
        span(
            2,
            Some(1),
            Client,
            1,
            "frontend",
            vec![
                kv("http.request.method", "GET"),
                kv("url.full", "http://cart:8080/cart/42"),
                kv("server.address", "cart"),
                kv_int("server.port", 8080),
            ],
        ),
        span(
            3,
            Some(2),
            Server,
            2,
            "cart",
            vec![
                kv("http.request.method", "GET"),
                kv("http.route", "/cart/{userId}"),
                kv_int("http.response.status_code", 200),
            ],
        ),
        span(
            1,
            None,
            Server,
            0,
            "frontend",
            vec![kv("http.request.method", "GET"), kv("url.path", "/cart")],
        ),
    ]);
    assert_eq!(
        edges(&calls),
        vec![e("frontend", "cart", "GET", "/cart/{userId}")]
    );
    let c = &calls[0];
    assert_eq!(
        c.entry
            .as_ref()
            .map(|e| (e.service.as_str(), e.route.as_str())),
        Some(("frontend", "GET /cart"))
    );
    assert_eq!(c.status, Some(200));
    assert_eq!(c.destination_address.as_deref(), Some("cart:8080"));
    assert_eq!(c.trace_id, hex::encode([T; 16]));
}

#[test]
fn old_conventions_template_the_target() {
    let calls = run(vec![
        span(
            1,
            None,
            Server,
            0,
            "web",
            vec![kv("http.method", "POST"), kv("http.target", "/orders?id=1")],
        ),
        span(
            2,
            Some(1),
            Client,
            1,
            "web",
            vec![
                kv("http.method", "GET"),
                kv("http.target", "/users/1234/profile"),
                kv("net.peer.name", "users"),
            ],
        ),
        span(
            3,
            Some(2),
            Server,
            2,
            "users",
            vec![
                kv("http.method", "GET"),
                kv("http.target", "/users/1234/profile"),
                kv("http.status_code", "503"),
            ],
        ),
    ]);
    assert_eq!(
        edges(&calls),
        vec![e("web", "users", "GET", "/users/{id}/profile")]
    );
    assert!(calls[0].error, "5xx is an error");
    assert_eq!(calls[0].entry.as_ref().unwrap().route, "POST /orders");
}

#[test]
fn grpc_routes_come_from_rpc_attributes() {
    let rpc = |code: i64| {
        vec![
            kv("rpc.system", "grpc"),
            kv("rpc.service", "hipstershop.CartService"),
            kv("rpc.method", "GetCart"),
            kv_int("rpc.grpc.status_code", code),
        ]
    };
    let calls = run(vec![
        span(
            1,
            None,
            Server,
            0,
            "frontend",
            vec![
                kv("rpc.system", "grpc"),
                kv("rpc.service", "hipstershop.Frontend"),
                kv("rpc.method", "Home"),
            ],
        ),
        span(2, Some(1), Client, 1, "frontend", rpc(0)),
        span(3, Some(2), Server, 2, "cartservice", rpc(5)),
    ]);
    assert_eq!(
        edges(&calls),
        vec![e(
            "frontend",
            "cartservice",
            "POST",
            "hipstershop.CartService/GetCart"
        )]
    );
    assert_eq!(calls[0].protocol, Protocol::Grpc);
    assert_eq!(
        calls[0].entry.as_ref().unwrap().route,
        "hipstershop.Frontend/Home"
    );
    assert!(
        !calls[0].error || calls[0].status == Some(0),
        "the client saw OK"
    );
}

#[test]
fn unpaired_clients_become_virtual_peers_db_messaging_and_peer_service() {
    let calls = run(vec![
        span(
            1,
            None,
            Server,
            0,
            "cart",
            vec![kv("http.method", "GET"), kv("http.route", "/cart")],
        ),
        span(
            2,
            Some(1),
            Client,
            1,
            "cart",
            vec![
                kv("db.system", "redis"),
                kv("db.statement", "HGETALL cart:1"),
            ],
        ),
        span(
            3,
            Some(1),
            Client,
            2,
            "cart",
            vec![
                kv("db.system", "postgresql"),
                kv("server.address", "pg-main"),
                kv("db.operation", "select"),
                kv("db.sql.table", "carts"),
            ],
        ),
        span(
            4,
            Some(1),
            Producer,
            3,
            "cart",
            vec![
                kv("messaging.system", "kafka"),
                kv("messaging.destination.name", "cart-events"),
            ],
        ),
        span(
            5,
            Some(1),
            Client,
            4,
            "cart",
            vec![
                kv("peer.service", "legacy-billing"),
                kv("http.method", "POST"),
                kv("http.url", "http://10.0.0.9/charge"),
            ],
        ),
    ]);
    assert_eq!(
        edges(&calls),
        vec![
            e("cart", "redis", "HGETALL", "*"),
            e("cart", "pg-main", "SELECT", "carts"),
            e("cart", "kafka", "publish", "cart-events"),
            e("cart", "legacy-billing", "POST", "/charge"),
        ]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.entry.as_ref().is_some_and(|e| e.service == "cart"))
    );
}

#[test]
fn producer_consumer_pairs_like_client_server() {
    let calls = run(vec![
        span(
            1,
            None,
            Producer,
            0,
            "orders",
            vec![
                kv("messaging.system", "kafka"),
                kv("messaging.destination.name", "paid"),
            ],
        ),
        span(
            2,
            Some(1),
            Consumer,
            9,
            "shipping",
            vec![
                kv("messaging.system", "kafka"),
                kv("messaging.destination.name", "paid"),
            ],
        ),
    ]);
    assert_eq!(
        edges(&calls),
        vec![e("orders", "shipping", "publish", "paid")]
    );
}

fn istio(cluster: &str, extra: Vec<KeyValue>) -> Vec<KeyValue> {
    let mut v = vec![
        kv("upstream_cluster", cluster),
        kv("node_id", "sidecar~10.0.0.1~x~bookinfo.svc.cluster.local"),
    ];
    v.extend(extra);
    v
}

#[test]
fn istio_sidecar_spans_pair_and_read_cluster_identity_and_mtls() {
    let calls = run(vec![
        span(
            1,
            None,
            Server,
            0,
            "productpage.bookinfo",
            istio(
                "inbound|9080||",
                vec![
                    kv("http.method", "GET"),
                    kv("http.url", "http://productpage:9080/productpage"),
                ],
            ),
        ),
        span(
            2,
            Some(1),
            Client,
            1,
            "productpage.bookinfo",
            istio(
                "outbound|9080|v3|reviews.bookinfo.svc.cluster.local",
                vec![
                    kv("http.method", "GET"),
                    kv("http.url", "http://reviews:9080/reviews/0"),
                    kv("http.status_code", "200"),
                    kv("response_flags", "-"),
                    kv("guid:x-request-id", "req-1"),
                    kv("istio.canonical_revision", "v1"),
                    kv(
                        "source.principal",
                        "spiffe://cluster.local/ns/bookinfo/sa/productpage",
                    ),
                    kv("connection_security_policy", "mutual_tls"),
                ],
            ),
        ),
        span(
            3,
            Some(2),
            Server,
            2,
            "reviews.bookinfo",
            istio(
                "inbound|9080||",
                vec![
                    kv("http.method", "GET"),
                    kv("http.url", "http://reviews:9080/reviews/0"),
                    kv("istio.canonical_revision", "v3"),
                ],
            ),
        ),
    ]);
    assert_eq!(
        edges(&calls),
        vec![e(
            "productpage.bookinfo",
            "reviews.bookinfo",
            "GET",
            "/reviews/{id}"
        )]
    );
    let c = &calls[0];
    assert_eq!(
        c.source.principal.as_deref(),
        Some("spiffe://cluster.local/ns/bookinfo/sa/productpage")
    );
    assert_eq!(c.mtls, Some(true));
    assert_eq!(c.request_id.as_deref(), Some("req-1"));
    assert_eq!(c.response_flags, None);
    assert_eq!(c.source_version.as_deref(), Some("v1"));
    assert_eq!(c.entry.as_ref().unwrap().service, "productpage");
}

#[test]
fn istio_outbound_without_a_server_names_the_peer_from_upstream_cluster() {
    let calls = run(vec![span(
        2,
        Some(1),
        Client,
        1,
        "reviews.bookinfo",
        istio(
            "outbound|9080||ratings.bookinfo.svc.cluster.local",
            vec![
                kv("http.method", "GET"),
                kv("http.url", "http://ratings:9080/ratings/1"),
                kv("response_flags", "UF"),
            ],
        ),
    )]);
    assert_eq!(
        edges(&calls),
        vec![e(
            "reviews.bookinfo",
            "ratings.bookinfo",
            "GET",
            "/ratings/{id}"
        )]
    );
    assert_eq!(calls[0].response_flags.as_deref(), Some("UF"));
    assert_eq!(
        calls[0].destination_address.as_deref(),
        Some("ratings:9080")
    );
}

#[test]
fn app_and_sidecar_double_layers_count_once_without_self_edges() {
    // app client → sidecar outbound client → sidecar inbound server → app server.
    let http = || vec![kv("http.method", "GET"), kv("url.path", "/items/7")];
    for order in [[1u8, 2, 3, 4, 5], [5, 4, 3, 2, 1], [3, 5, 1, 4, 2]] {
        let make = |id: u8| match id {
            1 => span(
                1,
                None,
                Server,
                0,
                "web",
                vec![kv("http.method", "GET"), kv("http.route", "/")],
            ),
            2 => span(2, Some(1), Client, 1, "web", http()),
            3 => span(3, Some(2), Client, 1, "web", http()),
            4 => span(4, Some(3), Server, 2, "items", http()),
            _ => span(
                5,
                Some(4),
                Server,
                2,
                "items",
                vec![kv("http.method", "GET"), kv("http.route", "/items/{id}")],
            ),
        };
        let calls = run(order.iter().map(|id| make(*id)).collect());
        assert_eq!(
            edges(&calls),
            vec![e("web", "items", "GET", "/items/{id}")],
            "order {order:?}"
        );
    }
}

#[test]
fn gateway_client_to_client_chains_yield_one_call_per_hop() {
    let calls = run(vec![
        span(
            1,
            None,
            Client,
            0,
            "istio-ingressgateway",
            vec![kv("http.method", "GET"), kv("http.url", "http://shop/cart")],
        ),
        span(
            2,
            Some(1),
            Client,
            0,
            "istio-ingressgateway",
            vec![
                kv("http.method", "GET"),
                kv("http.url", "http://frontend/cart"),
            ],
        ),
        span(
            3,
            Some(2),
            Server,
            1,
            "frontend",
            vec![kv("http.method", "GET"), kv("url.path", "/cart")],
        ),
        span(
            4,
            Some(3),
            Client,
            2,
            "frontend",
            vec![kv("http.method", "GET"), kv("url.path", "/cart/1")],
        ),
        span(
            5,
            Some(4),
            Server,
            3,
            "cart",
            vec![kv("http.method", "GET"), kv("url.path", "/cart/1")],
        ),
    ]);
    assert_eq!(
        edges(&calls),
        vec![
            e("istio-ingressgateway", "frontend", "GET", "/cart"),
            e("frontend", "cart", "GET", "/cart/{id}")
        ]
    );
    assert_eq!(
        calls[1].entry.as_ref().unwrap().service,
        "frontend",
        "first server below the gateway is the entry"
    );
}

#[test]
fn linkerd_proxy_spans_take_identity_from_kubernetes_attributes_and_authority() {
    let mut client = span(
        2,
        Some(1),
        Client,
        1,
        "linkerd-proxy",
        vec![
            kv("http.method", "GET"),
            kv("http.path", "/api/list"),
            kv(
                "http.authority",
                "emoji-svc.emojivoto.svc.cluster.local:8080",
            ),
            kv("http.status_code", "200"),
        ],
    );
    client.resource = vec![
        kv("k8s.deployment.name", "web"),
        kv("k8s.namespace.name", "emojivoto"),
        kv("k8s.pod.name", "web-abc"),
    ];
    let calls = run(vec![client]);
    assert_eq!(
        edges(&calls),
        vec![e(
            "web.emojivoto",
            "emoji-svc.emojivoto",
            "GET",
            "/api/list"
        )]
    );
}

#[test]
fn server_with_remote_parent_and_no_client_is_a_call_from_its_principal_or_unknown() {
    let calls = run(vec![span(
        3,
        Some(9),
        Server,
        2,
        "users",
        vec![
            kv("http.method", "DELETE"),
            kv("url.path", "/admin/users/5"),
            kv("source.principal", "spiffe://cluster.local/ns/shop/sa/cart"),
        ],
    )]);
    assert_eq!(
        edges(&calls),
        vec![e("cart.shop", "users", "DELETE", "/admin/users/{id}")]
    );
    let calls = run(vec![span(
        3,
        Some(9),
        Server,
        2,
        "users",
        vec![kv("http.method", "GET"), kv("url.path", "/x")],
    )]);
    assert_eq!(edges(&calls), vec![e("unknown", "users", "GET", "/x")]);
}

#[test]
fn route_cap_turns_a_path_flood_into_overflow() {
    let mut spans = vec![];
    for i in 0..5u8 {
        spans.push(span(
            10 + i,
            None,
            Client,
            i as u64,
            "scanner",
            vec![
                kv("http.method", "GET"),
                kv(
                    "url.path",
                    &*Box::leak(format!("/probe-{}", (b'a' + i) as char).into_boxed_str()),
                ),
                kv("server.address", "api"),
            ],
        ));
    }
    let mut n = SpanNormalizer::new(NormalizerConfig {
        max_routes_per_edge: 3,
        ..Default::default()
    });
    let mut calls = Vec::new();
    for s in spans {
        calls.extend(n.push(&request(vec![s])));
    }
    calls.extend(n.flush());
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.route == super::OVERFLOW_ROUTE)
            .count(),
        2
    );
    assert_eq!(n.stats().route_overflow, 2);
}

#[test]
fn sampling_weight_comes_from_tracestate() {
    let mut client = span(2, None, Client, 1, "a", vec![kv("peer.service", "b")]);
    client.trace_state = "ot=th:c";
    let calls = run(vec![client]);
    assert!((calls[0].weight - 4.0).abs() < 1e-9);
}

#[test]
fn calls_wait_for_the_root_then_release_on_watermark_without_it() {
    let mut n = SpanNormalizer::new(NormalizerConfig::default());
    let out = n.push(&request(vec![
        span(
            2,
            Some(1),
            Client,
            1,
            "frontend",
            vec![kv("http.method", "GET"), kv("url.path", "/x")],
        ),
        span(
            3,
            Some(2),
            Server,
            2,
            "x",
            vec![kv("http.method", "GET"), kv("url.path", "/x")],
        ),
    ]));
    assert!(out.is_empty(), "waiting for the entry");
    assert_eq!(n.stats().waiting_for_entry, 1);
    let released = n.advance((BASE + 10_000 * MS) as i64);
    assert_eq!(released.len(), 1);
    assert_eq!(
        released[0].entry, None,
        "no root server span: no entry (`guess_entry` is off)"
    );
}

#[test]
fn waiting_calls_release_in_event_time_order_as_the_watermark_passes_them() {
    let mut n = SpanNormalizer::new(NormalizerConfig::default());
    let wait = NormalizerConfig::default().entry_wait.as_nanos() as i64;
    let http = || vec![kv("http.method", "GET"), kv("url.path", "/x")];
    // Three traces, none with a root server span: every call waits for its entry.
    for (trace, at_ms) in [(3u8, 300u64), (1, 100), (2, 200)] {
        let mut req = request(vec![
            span(2, Some(1), Client, at_ms, "frontend", http()),
            span(3, Some(2), Server, at_ms + 1, "x", http()),
        ]);
        for s in req
            .resource_spans
            .iter_mut()
            .flat_map(|r| &mut r.scope_spans)
            .flat_map(|s| &mut s.spans)
        {
            s.trace_id = vec![trace; 16];
        }
        assert!(n.push(&req).is_empty());
    }
    assert_eq!(n.stats().waiting_for_entry, 3);
    let due = |ms: u64| (BASE + ms * MS) as i64 + wait;
    assert!(n.advance(due(100) - 1).is_empty(), "nothing due yet");
    let first: Vec<i64> = n
        .advance(due(200))
        .iter()
        .map(|c| c.event_time_ns)
        .collect();
    assert_eq!(
        first,
        vec![(BASE + 100 * MS) as i64, (BASE + 200 * MS) as i64]
    );
    assert_eq!(n.stats().waiting_for_entry, 1);
    assert_eq!(n.advance(due(300) + 3_600_000_000_000).len(), 1);
    assert_eq!(n.stats().waiting_for_entry, 0);
    assert!(
        n.flush().is_empty(),
        "idle traces are forgotten, nothing is left"
    );
}

/// A trace whose root server span is late (a slow request) or never comes: its calls
/// carry no entry by default, not the earliest server span seen (which would be an
/// entry learning never saw for them); `guess_entry` restores the guess.
#[test]
fn without_the_root_span_calls_carry_no_entry_unless_guessing_is_on() {
    let http = || vec![kv("http.method", "GET"), kv("url.path", "/x")];
    let released = |guess_entry: bool| {
        let config = NormalizerConfig {
            guess_entry,
            ..Default::default()
        };
        let wait = config.entry_wait.as_nanos() as i64;
        let mut n = SpanNormalizer::new(config);
        let req = request(vec![
            span(3, Some(2), Server, 10, "checkout", http()),
            span(4, Some(3), Client, 11, "checkout", http()),
            span(5, Some(4), Server, 12, "payment", http()),
        ]);
        let mut calls = n.push(&req);
        calls.extend(n.advance((BASE + 20 * MS) as i64 + wait));
        calls
            .into_iter()
            .find(|c| c.destination.service == "payment")
            .expect("the call is released after the wait")
    };
    assert_eq!(released(false).entry, None);
    let guessed = released(true).entry.expect("a guessed entry");
    assert_eq!(guessed.service, "checkout");
}

#[test]
fn pending_store_is_bounded_and_counts_drops() {
    let mut n = SpanNormalizer::new(NormalizerConfig {
        max_pending_spans: 10,
        ..Default::default()
    });
    for i in 0..50u8 {
        n.push(&request(vec![span(
            i,
            Some(200),
            Client,
            i as u64,
            "a",
            vec![],
        )]));
    }
    let s = n.stats();
    assert!(s.pending <= 10);
    assert_eq!(s.dropped, 40);
}

#[test]
fn span_links_and_internal_spans_make_no_edges() {
    let mut internal = span(2, Some(1), SpanKind::Internal, 1, "a", vec![]);
    internal.attrs.push(kv("peer.service", "b"));
    assert!(run(vec![internal]).is_empty());
}

proptest! {
    #[test]
    fn arbitrary_spans_never_panic_and_calls_name_both_sides(
        kinds in proptest::collection::vec(0i32..7, 1..20),
        parents in proptest::collection::vec(proptest::option::of(0u8..20), 1..20),
        names in proptest::collection::vec("[a-z.<>\"/ ]{0,12}", 1..20),
        paths in proptest::collection::vec(".{0,40}", 1..20),
    ) {
        let mut n = SpanNormalizer::new(NormalizerConfig::default());
        let mut calls = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let req = ExportTraceServiceRequest { resource_spans: vec![ResourceSpans {
                resource: Some(Resource { attributes: vec![kv("service.name", &names[i % names.len()])], ..Default::default() }),
                scope_spans: vec![ScopeSpans { spans: vec![Span {
                    trace_id: vec![1; 16], span_id: vec![i as u8; 8],
                    parent_span_id: parents[i % parents.len()].map(|p| vec![p; 8]).unwrap_or_default(),
                    kind: *kind, start_time_unix_nano: i as u64,
                    attributes: vec![kv("url.path", &paths[i % paths.len()]), kv("http.method", "GET")],
                    ..Default::default() }], ..Default::default() }],
                ..Default::default() }] };
            calls.extend(n.push(&req));
        }
        calls.extend(n.flush());
        for c in calls {
            prop_assert!(!c.source.service.is_empty());
            prop_assert!(!c.destination.service.is_empty());
            prop_assert!(!c.route.is_empty());
        }
    }
}

#[test]
fn workload_of_resource_without_service_name_is_unknown() {
    assert_eq!(super::resource_workload(&[]), Workload::new("unknown"));
}

/// A call lasting `secs`: its spans are exported when they end, minutes after they start.
fn long_call(
    id: u8,
    parent: Option<u8>,
    kind: SpanKind,
    service: &'static str,
    secs: u64,
) -> ExportTraceServiceRequest {
    let mut req = request(vec![span(id, parent, kind, 0, service, vec![])]);
    let s = &mut req.resource_spans[0].scope_spans[0].spans[0];
    s.end_time_unix_nano = s
        .start_time_unix_nano
        .saturating_add(secs.saturating_mul(1_000 * MS));
    req
}

#[test]
fn a_call_longer_than_the_ttl_still_pairs_when_its_spans_arrive_at_their_end() {
    let mut n = SpanNormalizer::new(NormalizerConfig::default());
    // The server span ends (and is exported) first; event time moves on for 29 s
    // while the client waits for the response.
    assert!(
        n.push(&long_call(3, Some(2), Server, "cart", 29))
            .is_empty()
    );
    let start = BASE as i64;
    assert!(n.advance(start + 29_000 * MS as i64).is_empty());
    let mut calls = n.push(&long_call(2, Some(1), Client, "web", 30));
    calls.extend(n.flush());
    assert_eq!(calls.len(), 1, "{:?}", edges(&calls));
    assert_eq!(
        (
            calls[0].source.service.as_str(),
            calls[0].destination.service.as_str()
        ),
        ("web", "cart")
    );
}

#[test]
fn a_long_pending_side_holds_the_release_point_a_ttl_at_most() {
    let config = NormalizerConfig::default();
    let ttl = config.pairing_ttl.as_nanos() as i64;
    let mut n = SpanNormalizer::new(config);
    n.push(&long_call(3, Some(2), Server, "cart", 120));
    let start = BASE as i64;
    // The side's start, rounded down to the ~17 ms the pending starts are counted in.
    let held = n.low_watermark(start + ttl / 2).expect("a side is pending");
    assert!(
        held <= start && start - held < 17 * MS as i64,
        "{held} for {start}"
    );
    let later = start + 60_000 * MS as i64;
    assert_eq!(n.low_watermark(later), Some(later - ttl));
}

#[test]
fn a_forged_endless_duration_cannot_keep_a_side_pending() {
    let config = NormalizerConfig::default();
    let cap = (config.max_call_duration + config.pairing_ttl).as_nanos() as i64;
    let mut n = SpanNormalizer::new(config);
    let mut req = long_call(3, Some(2), Server, "cart", 0);
    req.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = u64::MAX;
    n.push(&req);
    let start = BASE as i64;
    assert!(n.advance(start + cap - 1).is_empty());
    let calls = n.advance(start + cap);
    assert_eq!(
        calls.len(),
        1,
        "the side expired as a call from an unknown caller"
    );
    assert_eq!(n.low_watermark(start + cap), None);
}

#[test]
fn a_server_span_answering_a_caller_that_gave_up_is_not_a_second_call() {
    let mut n = SpanNormalizer::new(NormalizerConfig::default());
    // The client times out after 1 s and is counted as a call to its virtual peer...
    let mut calls = n.push(&long_call(2, Some(1), Client, "web", 1));
    calls.extend(n.advance(BASE as i64 + 4_000 * MS as i64));
    // ...and the server, still working, ends 5 s later: the same call, answered late.
    calls.extend(n.push(&long_call(3, Some(2), Server, "cart", 6)));
    calls.extend(n.flush());
    assert_eq!(calls.len(), 1, "{:?}", edges(&calls));
    assert_eq!(calls[0].source.service, "web");
    assert_eq!(n.stats().late_answers, 1);
}
