use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;

use super::super::shape::{RequestLimits, traces_protobuf, traces_protobuf_for_reader};
use super::super::validate::{span_count, validate_traces};
use super::*;

const NOW: i64 = 1_700_000_000_500_000_000;

fn window() -> TimeWindow {
    TimeWindow {
        future_skew: std::time::Duration::from_secs(60),
        max_age: std::time::Duration::from_secs(3600),
    }
}

fn limits() -> RequestLimits {
    RequestLimits {
        max_groups: 10_000,
        max_records: 100_000,
        max_attributes_per_list: 1_000,
        max_decoded_bytes: 1 << 30,
    }
}

/// What the decoding path gives for the same bytes.
fn decoded(bytes: &[u8]) -> (u64, Rejections, SpanBatch) {
    let mut req = ExportTraceServiceRequest::decode(bytes).unwrap();
    let received = span_count(&req);
    let rejections = validate_traces(&mut req, &window(), NOW);
    (received, rejections, SpanBatch::from_request(&req))
}

/// The receivers' path: the walk, then the reader with what the walk found.
fn read(bytes: &[u8], limits: &RequestLimits) -> Result<ReadSpans, IngestError> {
    let walked = traces_protobuf_for_reader(bytes, limits).expect("the walk passes");
    read_traces(bytes, &walked, limits, &window(), NOW)
}

fn assert_same(bytes: &[u8]) {
    let read = read(bytes, &limits()).unwrap();
    let (received, rejections, batch) = decoded(bytes);
    assert_eq!(read.received, received);
    assert_eq!(read.rejections, rejections);
    assert_eq!(read.batch, batch);
    // The reader added up what the walk left to it: the request's whole shape.
    assert_eq!(read.shape, traces_protobuf(bytes, &limits()).unwrap());
}

fn value(v: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: v,
        ..Default::default()
    }
}

fn s(v: &str) -> Option<AnyValue> {
    value(Value::StringValue(v.into()))
}

fn span(n: u8, kind: i32, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![n.max(1); 16],
        span_id: vec![n.max(1); 8],
        parent_span_id: if n.is_multiple_of(2) {
            vec![n; 8]
        } else {
            vec![]
        },
        name: format!("GET /items/{n}"),
        kind,
        start_time_unix_nano: NOW as u64 - u64::from(n) * 1_000_000,
        end_time_unix_nano: NOW as u64,
        attributes,
        trace_state: "ot=th:8".into(),
        ..Default::default()
    }
}

fn resource_spans(resource: Option<Vec<KeyValue>>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: resource.map(|attributes| Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn reads_what_decoding_reads() {
    let mut error = span(
        4,
        2,
        vec![
            kv("http.request.method", s("post")),
            kv("url.path", s("/cart/123")),
            kv("http.response.status_code", value(Value::IntValue(503))),
            kv("connection.mtls", value(Value::BoolValue(true))),
            kv("http.request.body.size", value(Value::DoubleValue(12.0))),
        ],
    );
    error.status = Some(Status {
        code: 2,
        ..Default::default()
    });
    let mut bad_ids = span(6, 3, vec![]);
    bad_ids.span_id = vec![0; 8];
    let mut late = span(7, 3, vec![]);
    late.start_time_unix_nano = 5;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans(
                Some(vec![
                    kv("service.name", s("cart")),
                    kv("k8s.namespace.name", s("shop")),
                    kv("k8s.pod.ip", s("10.0.0.7")),
                ]),
                vec![
                    span(1, 3, vec![kv("rpc.system", s("grpc"))]),
                    error,
                    span(3, 1, vec![]),
                    bad_ids,
                    late,
                    span(
                        8,
                        4,
                        vec![
                            // Duplicates: the first with a value wins.
                            kv("peer.service", None),
                            kv("peer.service", s("first")),
                            kv("peer.service", s("second")),
                            kv("messaging.system", s("kafka")),
                        ],
                    ),
                ],
            ),
            resource_spans(None, vec![span(9, 2, vec![])]),
            resource_spans(
                Some(vec![kv("service.name", s("  "))]),
                vec![span(10, 2, vec![])],
            ),
        ],
    };
    assert_same(&req.encode_to_vec());
}

#[test]
fn a_resource_after_its_spans_or_in_pieces_is_read_whole() {
    let spans = ScopeSpans {
        spans: vec![span(2, 3, vec![kv("http.method", s("GET"))])],
        ..Default::default()
    };
    let part = |attributes: Vec<KeyValue>| {
        Resource {
            attributes,
            ..Default::default()
        }
        .encode_to_vec()
    };
    // ResourceSpans { scope_spans, resource (namespace), resource (service.name) }.
    let mut rs = Vec::new();
    prost::encoding::message::encode(2, &spans, &mut rs);
    for resource in [
        part(vec![kv("k8s.namespace.name", s("shop"))]),
        part(vec![kv("service.name", s("cart"))]),
    ] {
        prost::encoding::bytes::encode(1, &resource, &mut rs);
    }
    let mut req = Vec::new();
    prost::encoding::bytes::encode(1, &rs, &mut req);
    assert_same(&req);
    let read = read(&req, &limits()).unwrap();
    assert_eq!(
        read.batch.infos[0].workload.namespace.as_deref(),
        Some("shop")
    );
}

#[test]
fn a_repeated_value_field_keeps_the_last_value_as_decoding_merges_it() {
    // KeyValue { key, value { string "a" }, value { int 7 } }.
    let mut kv_bytes = Vec::new();
    prost::encoding::string::encode(1, &"http.status_code".to_string(), &mut kv_bytes);
    for v in [Value::StringValue("a".into()), Value::IntValue(7)] {
        let any = AnyValue { value: Some(v) };
        prost::encoding::message::encode(2, &any, &mut kv_bytes);
    }
    let mut span_bytes = span(1, 3, vec![]).encode_to_vec();
    prost::encoding::bytes::encode(9, &kv_bytes, &mut span_bytes);
    let mut scope = Vec::new();
    prost::encoding::bytes::encode(2, &span_bytes, &mut scope);
    let mut rs = Vec::new();
    prost::encoding::message::encode(
        1,
        &Resource {
            attributes: vec![kv("service.name", s("cart"))],
            ..Default::default()
        },
        &mut rs,
    );
    prost::encoding::bytes::encode(2, &scope, &mut rs);
    let mut req = Vec::new();
    prost::encoding::bytes::encode(1, &rs, &mut req);
    assert_same(&req);
    let read = read(&req, &limits()).unwrap();
    assert_eq!(read.batch.infos[0].status, Some(7));
}

fn arb_value() -> impl Strategy<Value = Option<AnyValue>> {
    prop_oneof![
        Just(None),
        Just(Some(AnyValue { value: None })),
        "[ -~]{0,12}".prop_map(|v| s(&v)),
        prop::sample::select(vec![
            "GET",
            "grpc",
            "mutual_tls",
            "spiffe://td/ns/a/sa/b",
            "10.0.0.1",
            "outbound|80||cart.shop.svc.cluster.local",
            "/a/12/b?x",
            "true",
            "-"
        ])
        .prop_map(s),
        any::<i64>().prop_map(|i| value(Value::IntValue(i % 1000))),
        any::<bool>().prop_map(|b| value(Value::BoolValue(b))),
        any::<f64>().prop_map(|d| value(Value::DoubleValue(d))),
        Just(value(Value::BytesValue(vec![1, 2]))),
    ]
}

fn arb_attrs() -> impl Strategy<Value = Vec<KeyValue>> {
    // Keys span reading looks up, and some it does not.
    let keys = prop::sample::select(
        crate::spans::Key::ALL
            .iter()
            .map(|k| k.as_str())
            .chain(["other", "service.name"])
            .collect::<Vec<_>>(),
    );
    prop::collection::vec((keys, arb_value()), 0..12)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| kv(k, v)).collect())
}

fn arb_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let spans = prop::collection::vec((any::<u8>(), 0..6i32, arb_attrs(), any::<bool>()), 0..6);
    prop::collection::vec((prop::option::of(arb_attrs()), any::<bool>(), spans), 0..4).prop_map(
        |resources| ExportTraceServiceRequest {
            resource_spans: resources
                .into_iter()
                .map(|(resource, named, spans)| {
                    let resource = resource.map(|mut attrs| {
                        if named {
                            attrs.push(kv("service.name", s("svc")));
                        }
                        attrs
                    });
                    let spans = spans
                        .into_iter()
                        .map(|(n, kind, attrs, error)| {
                            let mut sp = span(n, kind, attrs);
                            if n.is_multiple_of(5) {
                                sp.start_time_unix_nano = u64::MAX;
                            }
                            if n.is_multiple_of(7) {
                                sp.trace_id.truncate(3);
                            }
                            sp.status = error.then(|| Status {
                                code: i32::from(n % 3),
                                message: "failed".into(),
                            });
                            // What the reader walks but does not read: events and links.
                            if n.is_multiple_of(3) {
                                sp.events.push(Event {
                                    name: "retry".into(),
                                    attributes: vec![kv("attempt", s("2"))],
                                    ..Default::default()
                                });
                                sp.links.push(Link {
                                    trace_id: vec![n; 16],
                                    span_id: vec![n; 8],
                                    trace_state: "k=v".into(),
                                    ..Default::default()
                                });
                            }
                            sp
                        })
                        .collect();
                    resource_spans(resource, spans)
                })
                .collect(),
        },
    )
}

proptest! {
    #[test]
    fn any_request_reads_as_decoding_reads_it(req in arb_request()) {
        assert_same(&req.encode_to_vec());
    }

    #[test]
    fn mutated_requests_the_walk_passes_read_as_decoding_reads_them(
        req in arb_request(),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..3),
    ) {
        let mut bytes = req.encode_to_vec();
        for (at, mask) in flips {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= mask;
            }
        }
        if traces_protobuf_for_reader(&bytes, &limits()).is_ok() {
            // The walk left some strings and the attributes to the reader: together they
            // refuse exactly what the whole walk refuses, which is what decoding refuses
            // and protobuf groups (see `what_the_walk_passes_prost_decodes`).
            let whole_walk = traces_protobuf(&bytes, &limits()).is_ok();
            let read = read(&bytes, &limits());
            prop_assert_eq!(read.is_ok(), whole_walk, "{:?}", read.err());
            if whole_walk {
                assert_same(&bytes);
            }
        }
    }
}

#[test]
fn strings_the_walk_leaves_to_the_reader_are_checked_by_it() {
    let nameless_span = span(1, 2, vec![kv("peer.service", s("cart"))]);
    let req = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(None, vec![nameless_span])],
    };
    let bytes = req.encode_to_vec();
    // Every string the reader reads, made invalid in turn (same length: `GET` and the
    // attribute key and value are each found once).
    for needle in [&b"GET /items/1"[..], b"peer.service", b"cart", b"ot=th:8"] {
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("string on the wire");
        let mut broken = bytes.clone();
        broken[at] = 0xff;
        assert!(ExportTraceServiceRequest::decode(broken.as_slice()).is_err());
        assert!(
            read(&broken, &limits()).is_err(),
            "{}",
            String::from_utf8_lossy(needle)
        );
    }
}

/// A request of one named resource whose span carries `attribute`.
fn with_span_attribute(attribute: KeyValue) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            Some(vec![kv("service.name", s("cart"))]),
            vec![span(1, 2, vec![attribute])],
        )],
    }
}

fn nested_list(depth: usize) -> Option<AnyValue> {
    let mut v = s("leaf");
    for _ in 0..depth {
        v = value(Value::KvlistValue(
            opentelemetry_proto::tonic::common::v1::KeyValueList {
                values: vec![kv("k", v)],
            },
        ));
    }
    v
}

#[test]
fn attributes_the_walk_leaves_to_the_reader_are_checked_and_sized_by_it() {
    // A wrong wire type in a span attribute's key, value and value field.
    for (field, wire) in [(1u8, 0u8), (2, 0), (2, 5)] {
        let mut kv_bytes = vec![(field << 3) | wire, 1];
        if wire == 5 {
            kv_bytes = vec![(field << 3) | wire, 0, 0, 0, 0];
        }
        let mut span_bytes = span(1, 2, vec![]).encode_to_vec();
        prost::encoding::bytes::encode(9, &kv_bytes, &mut span_bytes);
        let mut scope = Vec::new();
        prost::encoding::bytes::encode(2, &span_bytes, &mut scope);
        let mut rs = Vec::new();
        prost::encoding::bytes::encode(2, &scope, &mut rs);
        let mut req = Vec::new();
        prost::encoding::bytes::encode(1, &rs, &mut req);
        assert!(ExportTraceServiceRequest::decode(req.as_slice()).is_err());
        let err = read(&req, &limits()).err().expect("refused");
        assert!(matches!(err, IngestError::Malformed(_)), "{err}");
    }
    // Nesting inside a span attribute: refused past the walk's depth, as before.
    let deep = with_span_attribute(kv("deep", nested_list(40))).encode_to_vec();
    let err = read(&deep, &limits()).err().expect("too deep");
    assert!(err.to_string().contains("nested too deeply"), "{err}");
    assert_same(&with_span_attribute(kv("nested", nested_list(5))).encode_to_vec());
    // A nested list's own attribute limit and the request's decoded size still apply.
    let wide = with_span_attribute(kv(
        "wide",
        value(Value::KvlistValue(
            opentelemetry_proto::tonic::common::v1::KeyValueList {
                values: (0..1_001).map(|i| kv(&i.to_string(), s("v"))).collect(),
            },
        )),
    ))
    .encode_to_vec();
    let err = read(&wide, &limits()).err().expect("too many attributes");
    assert!(matches!(err, IngestError::OverLimit(_)), "{err}");
    let big = with_span_attribute(kv("big", s(&"x".repeat(5_000)))).encode_to_vec();
    let whole = traces_protobuf(&big, &limits()).unwrap().decoded_bytes;
    let tight = RequestLimits {
        max_decoded_bytes: whole - 1,
        ..limits()
    };
    // The walk alone no longer sees the attribute's 5,000 bytes; the reader does.
    assert!(traces_protobuf_for_reader(&big, &tight).is_ok());
    let err = read(&big, &tight).err().expect("over the decoded size");
    assert!(matches!(err, IngestError::OverLimit(_)), "{err}");
}

/// Reads one `KeyValue`'s bytes both ways: the short-string layout (when it applies) and
/// the field loop; they must agree on the key, value, size and errors.
fn both_ways(bytes: &[u8]) -> bool {
    let limits = limits();
    let attributes = |fields: bool| {
        let mut a = Attributes {
            limits: &limits,
            shape: Shape::default(),
        };
        let read = if fields {
            a.key_value_fields(bytes, SPAN_ATTRIBUTE_VALUE_DEPTH)
        } else {
            a.key_value(bytes, SPAN_ATTRIBUTE_VALUE_DEPTH)
        };
        // A refused request has no size to agree on.
        read.map(|r| (r, a.shape)).map_err(|e| e.to_string())
    };
    assert_eq!(attributes(false), attributes(true), "{bytes:?}");
    short_string_attribute(bytes).is_some()
}

#[test]
fn short_string_attributes_read_as_the_field_loop_reads_them() {
    let keys = ["http.method", "guid:x-request-id", "not.a.key", ""];
    for key in keys
        .into_iter()
        .chain([&*"k".repeat(127), &*"k".repeat(128)])
    {
        for len in [0, 1, 60, 125, 126, 127, 128, 200] {
            let bytes = kv(key, s(&"v".repeat(len))).encode_to_vec();
            let short = both_ways(&bytes);
            // prost leaves an empty key out.
            let expected = len < 126 && !key.is_empty() && key.len() < 128;
            assert_eq!(short, expected, "{key} {len}");
        }
    }
    // Hand-made layouts the field loop reads another way (or refuses): a two-byte
    // length of 0x80 where the short layout has one byte, a value field that holds more
    // than its string, bytes after the value, a string that is not UTF-8, a non-string value.
    let mut two_byte_length = vec![0x0A, 1, b'k', 0x12, 0x80, 0x0A, 126];
    two_byte_length.extend([b'v'; 126]);
    for bytes in [
        two_byte_length,
        vec![0x0A, 1, b'k', 0x12, 5, 0x0A, 1, b'v', 0x10, 1],
        vec![0x0A, 1, b'k', 0x12, 3, 0x0A, 1, b'v', 0x0A, 0],
        vec![0x0A, 1, b'k', 0x12, 3, 0x0A, 1, 0xFF],
        vec![0x0A, 1, 0xFF, 0x12, 3, 0x0A, 1, b'v'],
        vec![0x0A, 1, b'k', 0x12, 2, 0x10, 1],
        vec![0x12, 3, 0x0A, 1, b'v', 0x0A, 1, b'k'],
    ] {
        both_ways(&bytes);
    }
}
