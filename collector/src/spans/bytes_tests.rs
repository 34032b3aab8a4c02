//! Request and response body sizes on span calls: every convention read, hostile values
//! absent, and the callee's count winning over the caller's.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

use super::attributes::test_support::{kv, kv_int};
use super::naming_tests::{call_of, client, run, server, workload};

fn kv_double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn http(mut extra: Vec<KeyValue>) -> Vec<KeyValue> {
    extra.extend([
        kv("http.request.method", "GET"),
        kv("url.path", "/api/users"),
        kv("server.address", "users"),
    ]);
    extra
}

/// The sizes of the call an unanswered CLIENT span with these attributes makes.
fn caller_sizes(attrs: Vec<KeyValue>) -> (Option<u64>, Option<u64>) {
    let (calls, _) = run(vec![vec![client(1, workload("web", "shop"), http(attrs))]]);
    let call = call_of(&calls, 1);
    (call.request_bytes, call.response_bytes)
}

#[test]
fn every_convention_is_read() {
    let cases = [
        (
            vec![
                kv_int("http.request.body.size", 12),
                kv_int("http.response.body.size", 3495),
            ],
            (Some(12), Some(3495)),
        ),
        (
            vec![
                kv_int("http.request_content_length", 7),
                kv_int("http.response_content_length", 70),
            ],
            (Some(7), Some(70)),
        ),
        // Envoy's tracer writes every tag as a string.
        (
            vec![kv("request_size", "0"), kv("response_size", "1843")],
            (Some(0), Some(1843)),
        ),
        (
            vec![
                kv_int("http.request_content_length_uncompressed", 9),
                kv_int("http.response_content_length_uncompressed", 90),
            ],
            (Some(9), Some(90)),
        ),
        // Zipkin's body sizes; OTel's whole-message sizes, as a last resort.
        (
            vec![kv("http.request.size", "3"), kv("http.response.size", "30")],
            (Some(3), Some(30)),
        ),
        (
            vec![
                kv_int("http.response.size", 999),
                kv_int("http.response.body.size", 900),
            ],
            (None, Some(900)),
        ),
        (
            vec![
                kv("http.request.body.size", " 5 "),
                kv_double("http.response.body.size", 2048.0),
            ],
            (Some(5), Some(2048)),
        ),
        (vec![], (None, None)),
    ];
    for (attrs, expected) in cases {
        let shown = format!("{attrs:?}");
        assert_eq!(caller_sizes(attrs), expected, "{shown}");
    }
}

#[test]
fn hostile_values_are_absent_and_never_hide_a_good_one() {
    for bad in [
        kv_int("http.response.body.size", -1),
        kv("http.response.body.size", "-"),
        kv("http.response.body.size", "1.5"),
        kv("http.response.body.size", "1e9"),
        kv("http.response.body.size", "lots"),
        kv("http.response.body.size", "99999999999999999999999999"),
        kv_int("http.response.body.size", i64::MAX),
        kv_double("http.response.body.size", f64::NAN),
        kv_double("http.response.body.size", -3.0),
        kv_double("http.response.body.size", 0.25),
    ] {
        let shown = format!("{bad:?}");
        assert_eq!(caller_sizes(vec![bad.clone()]).1, None, "{shown}");
        // A garbage value under the preferred key does not hide a later convention.
        assert_eq!(
            caller_sizes(vec![bad, kv("response_size", "640")]).1,
            Some(640),
            "{shown}"
        );
    }
}

#[test]
fn the_callees_count_wins_and_the_callers_fills_gaps() {
    let (calls, _) = run(vec![
        // The caller under-reports a large read; the callee saw what it sent.
        vec![
            client(
                1,
                workload("web", "shop"),
                http(vec![
                    kv_int("http.request.body.size", 10),
                    kv_int("http.response.body.size", 100),
                ]),
            ),
            server(
                1,
                workload("users", "shop"),
                http(vec![
                    kv_int("http.request.body.size", 11),
                    kv_int("http.response.body.size", 5_000_000),
                ]),
            ),
        ],
        // The callee reports no sizes: the caller's stand.
        vec![
            client(
                2,
                workload("web", "shop"),
                http(vec![
                    kv_int("http.request.body.size", 20),
                    kv_int("http.response.body.size", 200),
                ]),
            ),
            server(2, workload("users", "shop"), http(vec![])),
        ],
        // Each side knows one of the two.
        vec![
            client(
                3,
                workload("web", "shop"),
                http(vec![kv_int("http.request.body.size", 30)]),
            ),
            server(
                3,
                workload("users", "shop"),
                http(vec![kv("response_size", "300")]),
            ),
        ],
    ]);
    let sizes = |t| {
        let c = call_of(&calls, t);
        (c.request_bytes, c.response_bytes)
    };
    assert_eq!(sizes(1), (Some(11), Some(5_000_000)));
    assert_eq!(sizes(2), (Some(20), Some(200)));
    assert_eq!(sizes(3), (Some(30), Some(300)));
}

#[test]
fn a_call_known_only_from_its_server_span_carries_its_sizes() {
    let mut lone = server(
        4,
        workload("users", "shop"),
        http(vec![
            kv_int("http.request.body.size", 1),
            kv_int("http.response.body.size", 2),
        ]),
    );
    lone.parent = Some(9);
    let (calls, _) = run(vec![vec![lone]]);
    let call = call_of(&calls, 4);
    assert_eq!(call.source.service, "unknown");
    assert_eq!(
        (call.request_bytes, call.response_bytes),
        (Some(1), Some(2))
    );
}
