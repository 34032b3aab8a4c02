use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use prost::Message;

use super::super::validate::fixtures::*;
use super::*;

fn limits() -> RequestLimits {
    RequestLimits {
        max_groups: 1_000,
        max_records: 10_000,
        max_attributes_per_list: 64,
        max_decoded_bytes: 64 << 20,
    }
}

fn nested(depth: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for i in 0..depth {
        value = AnyValue {
            value: Some(if i % 2 == 0 {
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![value.clone(), value],
                })
            } else {
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                })
            }),
        };
    }
    value
}

/// What the typed request holds: the same counts the wire walk must find, and a floor
/// under the decoded size (inline sizes of every element plus string payloads).
fn typed_shape(req: &ExportTraceServiceRequest) -> (u64, u64, u64, u64) {
    fn value_floor(v: &AnyValue) -> u64 {
        match &v.value {
            Some(any_value::Value::StringValue(s)) => s.len() as u64,
            Some(any_value::Value::ArrayValue(a)) => a
                .values
                .iter()
                .map(|v| size_of::<AnyValue>() as u64 + value_floor(v))
                .sum(),
            Some(any_value::Value::KvlistValue(l)) => l.values.iter().map(kv_floor).sum(),
            _ => 0,
        }
    }
    fn kv_floor(kv: &KeyValue) -> u64 {
        size_of::<KeyValue>() as u64
            + kv.key.len() as u64
            + kv.value.as_ref().map_or(0, value_floor)
    }
    fn count_kvs(kvs: &[KeyValue]) -> u64 {
        kvs.iter()
            .map(|kv| {
                1 + match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::KvlistValue(l)) => count_kvs(&l.values),
                    Some(any_value::Value::ArrayValue(a)) => a
                        .values
                        .iter()
                        .map(|v| match &v.value {
                            Some(any_value::Value::KvlistValue(l)) => count_kvs(&l.values),
                            _ => 0,
                        })
                        .sum(),
                    _ => 0,
                }
            })
            .sum()
    }
    let (mut groups, mut records, mut attributes, mut floor) = (0, 0, 0, 0);
    for rs in &req.resource_spans {
        groups += 1 + rs.scope_spans.len() as u64;
        floor += size_of::<ResourceSpans>() as u64;
        let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        attributes += count_kvs(resource);
        floor += resource.iter().map(kv_floor).sum::<u64>();
        for ss in &rs.scope_spans {
            floor += size_of::<ScopeSpans>() as u64;
            for span in &ss.spans {
                records += 1;
                attributes += count_kvs(&span.attributes);
                floor += size_of::<Span>() as u64 + span.name.len() as u64;
                floor += span.attributes.iter().map(kv_floor).sum::<u64>();
            }
        }
    }
    (groups, records, attributes, floor)
}

fn rich_request() -> ExportTraceServiceRequest {
    let mut with_attrs = span(2);
    with_attrs.attributes = vec![
        string_kv("http.route", "/api/{id}"),
        KeyValue {
            key: "nested".into(),
            value: Some(nested(5)),
            ..Default::default()
        },
    ];
    with_attrs.events = vec![span::Event {
        name: "retry".into(),
        attributes: vec![string_kv("attempt", "2")],
        ..Default::default()
    }];
    request(vec![
        resource_spans(Some("cart"), vec![span(1), with_attrs]),
        resource_spans(Some("shop"), vec![span(3)]),
    ])
}

#[test]
fn the_wire_walk_counts_what_decoding_builds() {
    let req = rich_request();
    let shape = traces_protobuf(&req.encode_to_vec(), &limits()).unwrap();
    let (groups, records, attributes, floor) = typed_shape(&req);
    assert_eq!((shape.groups, shape.records), (groups, records));
    // The event's attribute is counted too.
    assert_eq!(shape.attributes, attributes + 1);
    assert!(
        shape.decoded_bytes >= floor,
        "{} < {floor}",
        shape.decoded_bytes
    );
}

#[test]
fn empty_resource_groups_are_refused_before_decoding() {
    // Two bytes per empty ResourceSpans on the wire, a whole struct each once decoded.
    let bomb = [0x0a, 0x00].repeat(8 << 20);
    let err = traces_protobuf(&bomb, &limits()).unwrap_err();
    assert!(
        matches!(err, IngestError::OverLimit(ref m) if m.contains("groups")),
        "{err}"
    );
}

#[test]
fn a_resource_with_millions_of_attributes_is_refused() {
    let mut req = request(vec![resource_spans(Some("cart"), vec![span(1)])]);
    let resource = req.resource_spans[0]
        .resource
        .get_or_insert_with(Resource::default);
    resource.attributes = vec![KeyValue::default(); 100_000];
    let err = traces_protobuf(&req.encode_to_vec(), &limits()).unwrap_err();
    assert!(
        matches!(err, IngestError::OverLimit(ref m) if m.contains("attributes")),
        "{err}"
    );
    let err = check_traces(&req, &limits()).unwrap_err();
    assert!(matches!(err, IngestError::OverLimit(_)), "{err}");
}

#[test]
fn the_decoded_size_limit_applies_to_both_encodings() {
    let req = request(vec![resource_spans(
        Some("cart"),
        (1..=200).map(|i| span(i as u8)).collect(),
    )]);
    let tight = RequestLimits {
        max_decoded_bytes: 20_000,
        ..limits()
    };
    assert!(matches!(
        traces_protobuf(&req.encode_to_vec(), &tight),
        Err(IngestError::OverLimit(_))
    ));
    let json = serde_json::to_vec(&req).unwrap();
    assert!(matches!(
        json_bound(&json, &tight),
        Err(IngestError::OverLimit(_))
    ));
}

#[test]
fn nesting_past_the_depth_limit_is_malformed() {
    let mut deep = AnyValue::default();
    for _ in 0..40 {
        deep = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![deep],
            })),
        };
    }
    let mut s = span(1);
    s.attributes = vec![KeyValue {
        key: "deep".into(),
        value: Some(deep),
        ..Default::default()
    }];
    let req = request(vec![resource_spans(Some("cart"), vec![s])]);
    assert!(matches!(
        traces_protobuf(&req.encode_to_vec(), &limits()),
        Err(IngestError::Malformed(_))
    ));
}

#[test]
fn json_braces_inside_strings_are_not_objects() {
    let text = br#"{"resourceSpans":[{"schemaUrl":"{{{{{{{{\"{{{{"}]}"#;
    let bound = json_bound(text, &limits()).unwrap();
    assert_eq!(bound, text.len() as u64 + 2 * GROWTH * largest_element());
}

fn arb_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let attrs = prop::collection::vec(("[a-z.]{0,12}", "[ -~]{0,20}"), 0..6);
    let span_attrs = prop::collection::vec((any::<u8>(), attrs.clone(), 0..3usize), 0..5);
    let resources = prop::collection::vec((attrs, span_attrs), 0..4);
    resources.prop_map(|resources| {
        request(
            resources
                .into_iter()
                .map(|(res_attrs, spans)| {
                    let mut rs = resource_spans(
                        Some("svc"),
                        spans
                            .into_iter()
                            .map(|(n, attrs, depth)| {
                                let mut s = span(n);
                                s.attributes = attrs.iter().map(|(k, v)| string_kv(k, v)).collect();
                                s.attributes.push(KeyValue {
                                    key: "nested".into(),
                                    value: Some(nested(depth)),
                                    ..Default::default()
                                });
                                s
                            })
                            .collect(),
                    );
                    if let Some(r) = rs.resource.as_mut() {
                        r.attributes
                            .extend(res_attrs.iter().map(|(k, v)| string_kv(k, v)));
                    }
                    rs
                })
                .collect(),
        )
    })
}

proptest! {
    #[test]
    fn any_request_walks_to_its_decoded_shape(req in arb_request()) {
        let bytes = req.encode_to_vec();
        let shape = traces_protobuf(&bytes, &limits()).unwrap();
        let (groups, records, attributes, floor) = typed_shape(&req);
        prop_assert_eq!((shape.groups, shape.records, shape.attributes), (groups, records, attributes));
        prop_assert!(shape.decoded_bytes >= floor);
        check_traces(&req, &limits()).unwrap();
        // The JSON bound is coarser, never tighter.
        let json = serde_json::to_vec(&req).unwrap();
        prop_assert!(json_bound(&json, &limits()).unwrap() >= floor);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_ones_decode(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(shape) = traces_protobuf(&bytes, &limits())
            && let Ok(req) = ExportTraceServiceRequest::decode(bytes.as_slice())
        {
            let (groups, records, _, _) = typed_shape(&req);
            prop_assert_eq!((shape.groups, shape.records), (groups, records));
        }
        let _ = logs_protobuf(&bytes, &limits());
        let _ = json_bound(&bytes, &limits());
    }
}

/// `(position, xor mask)` pairs applied to an encoded request.
fn mutated(mut bytes: Vec<u8>, flips: &[(usize, u8)]) -> Vec<u8> {
    for &(at, mask) in flips {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] ^= mask;
        }
    }
    bytes
}

proptest! {
    // Spans are read straight from requests the walk passes: it must refuse every
    // request `prost` would (wire types, UTF-8, lengths), not only the oversized ones.
    #[test]
    fn what_the_walk_passes_prost_decodes(
        req in arb_request(),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..4),
    ) {
        let bytes = mutated(req.encode_to_vec(), &flips);
        if traces_protobuf(&bytes, &limits()).is_ok() {
            prop_assert!(ExportTraceServiceRequest::decode(bytes.as_slice()).is_ok());
        }
        if logs_protobuf(&bytes, &limits()).is_ok() {
            prop_assert!(ExportLogsServiceRequest::decode(bytes.as_slice()).is_ok());
        }
    }
}

#[test]
fn a_wrong_wire_type_or_invalid_utf8_is_malformed_before_decoding() {
    let mut s = span(1);
    s.name = "ok".into();
    let bytes = request(vec![resource_spans(Some("cart"), vec![s])]).encode_to_vec();
    // The span name's bytes turned into invalid UTF-8.
    let at = bytes.windows(2).position(|w| w == b"ok").unwrap();
    let mut bad = bytes.clone();
    bad[at] = 0xff;
    assert!(ExportTraceServiceRequest::decode(bad.as_slice()).is_err());
    assert!(matches!(
        traces_protobuf(&bad, &limits()),
        Err(IngestError::Malformed(_))
    ));
    // `kind` (field 6, varint) sent as a fixed 64-bit value.
    let mut wrong = request(vec![]).encode_to_vec();
    let span_body = [0x31u8, 0, 0, 0, 0, 0, 0, 0, 0];
    let scope = [&[0x12u8, span_body.len() as u8][..], &span_body].concat();
    let resource = [&[0x12u8, scope.len() as u8][..], &scope].concat();
    wrong.extend([0x0a, resource.len() as u8]);
    wrong.extend(&resource);
    assert!(ExportTraceServiceRequest::decode(wrong.as_slice()).is_err());
    assert!(matches!(
        traces_protobuf(&wrong, &limits()),
        Err(IngestError::Malformed(_))
    ));
}
