//! Property tests: arbitrary input never panics; formatted lines give their fields back.

use eastwest_model::{CompactString, ToCompactString, Workload};
use proptest::prelude::*;

use super::*;

fn token() -> impl Strategy<Value = Option<CompactString>> {
    proptest::option::of(
        "[A-Za-z0-9_./:|,=-]{1,24}"
            .prop_filter("`-` means absent", |s| s != "-")
            .prop_map(CompactString::from),
    )
}

prop_compose! {
    fn fields()(
        start_time in token(), method in token(), path in token(), protocol in token(),
        response_code in proptest::option::of(any::<u32>()), response_flags in token(),
        response_code_details in token(), duration_ms in proptest::option::of(any::<u64>()),
        request_id in token(), authority in token(), upstream_host in token(),
        upstream_cluster in token(), downstream_remote_address in token(),
        requested_server_name in token(), downstream_peer_uri_san in token(),
        upstream_peer_uri_san in token(),
        bytes_received in proptest::option::of(0..=crate::sizes::MAX_BYTES),
        bytes_sent in proptest::option::of(0..=crate::sizes::MAX_BYTES),
    ) -> AccessLogFields {
        AccessLogFields {
            start_time, method, path, protocol, response_code, response_flags, response_code_details,
            duration_ms, request_id, authority, upstream_host, upstream_cluster, downstream_remote_address,
            requested_server_name, downstream_peer_uri_san, upstream_peer_uri_san, trace_id: None, span_id: None,
            bytes_received, bytes_sent,
        }
    }
}

fn to_json(f: &AccessLogFields) -> String {
    let mut map = serde_json::Map::new();
    let mut put = |k: &str, v: &Option<CompactString>| {
        map.insert(
            k.into(),
            v.as_deref().map_or(serde_json::Value::Null, |v| {
                serde_json::Value::String(v.into())
            }),
        );
    };
    put("start_time", &f.start_time);
    put("method", &f.method);
    put("path", &f.path);
    put("protocol", &f.protocol);
    put(
        "response_code",
        &f.response_code.map(|c| c.to_compact_string()),
    );
    put("response_flags", &f.response_flags);
    put("response_code_details", &f.response_code_details);
    put("duration", &f.duration_ms.map(|d| d.to_compact_string()));
    put("request_id", &f.request_id);
    put("authority", &f.authority);
    put("upstream_host", &f.upstream_host);
    put("upstream_cluster", &f.upstream_cluster);
    put("downstream_remote_address", &f.downstream_remote_address);
    put("requested_server_name", &f.requested_server_name);
    put("downstream_peer_uri_san", &f.downstream_peer_uri_san);
    put("upstream_peer_uri_san", &f.upstream_peer_uri_san);
    put(
        "bytes_received",
        &f.bytes_received.map(|b| b.to_compact_string()),
    );
    put("bytes_sent", &f.bytes_sent.map(|b| b.to_compact_string()));
    serde_json::Value::Object(map).to_string()
}

/// Pieces real lines are made of, glued at random: finds tokenizer edge cases faster
/// than uniform strings.
fn line_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\"".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(" ".to_string()),
        Just("-".to_string()),
        Just("{".to_string()),
        Just("outbound|8080||a.b.svc.cluster.local".to_string()),
        Just("inbound|80||".to_string()),
        Just("outbound_.80_._.".to_string()),
        Just("spiffe://td/ns/x/sa/".to_string()),
        Just("[2024-05-01T10:00:00Z]".to_string()),
        Just("\"GET /a/1 HTTP/2\"".to_string()),
        "\\PC{0,8}",
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics(line in "\\PC{0,300}") {
        let _ = parse_access_log_line(&line);
        let _ = call_from_line(&line, &Workload::new("unknown"));
        let _ = call_from_line(&line, &Workload::new("a").in_namespace("b"));
    }

    #[test]
    fn line_like_input_never_panics(line in line_like()) {
        if let Ok(f) = parse_access_log_line(&line) {
            for value in [&f.path, &f.authority, &f.upstream_cluster].into_iter().flatten() {
                prop_assert!(value.len() <= 256);
            }
            if let Ok((call, _)) = f.into_call(&Workload::new("unknown"), 1) {
                prop_assert!(call.route.len() <= 256 && call.destination.service.len() <= 256);
            }
        }
    }

    #[test]
    fn text_lines_round_trip(f in fields()) {
        let line = format_istio_text(&f);
        prop_assert_eq!(parse_istio_text(&line).unwrap(), f.clone(), "{}", line);
        prop_assert_eq!(parse_access_log_line(&line).unwrap(), f);
    }

    #[test]
    fn json_lines_round_trip(f in fields()) {
        let line = to_json(&f);
        prop_assert_eq!(parse_istio_json(&line).unwrap(), f.clone());
        prop_assert_eq!(parse_access_log_line(&line).unwrap(), f);
    }
}
