//! Istio's JSON access-log encoding (`meshConfig.accessLogEncoding: JSON`) and the same
//! keys as OTLP log attributes or a key/value body (Envoy's OpenTelemetry access
//! logger). Values may be strings (Istio's JSON template quotes every operator),
//! numbers, or `null`; `-` and `""` mean absent.

use eastwest_model::{CompactString, ToCompactString};
use serde_json::{Map, Value};

use super::fields::{AccessLogFields, present};
use crate::CollectorError;

/// Lines longer than this are not access-log lines (a real one is well under 4 KiB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

fn text(map: &Map<String, Value>, keys: &[&str]) -> Option<CompactString> {
    keys.iter().find_map(|k| match map.get(*k)? {
        Value::String(s) => present(s),
        Value::Number(n) => Some(n.to_compact_string()),
        Value::Bool(b) => Some(b.to_compact_string()),
        _ => None,
    })
}

pub fn fields_from_map(map: &Map<String, Value>) -> AccessLogFields {
    AccessLogFields {
        start_time: text(map, &["start_time", "startTime", "timestamp"]),
        method: text(
            map,
            &[
                "method",
                "request_method",
                ":method",
                "request.method",
                "http.request.method",
            ],
        ),
        path: text(
            map,
            &[
                "path",
                "request_path",
                "x_envoy_original_path",
                ":path",
                "request.path",
                "url.path",
            ],
        ),
        protocol: text(map, &["protocol", "request.protocol"]),
        response_code: text(
            map,
            &["response_code", "responseCode", "response.code", "status"],
        )
        .and_then(|c| c.parse().ok()),
        response_flags: text(map, &["response_flags", "response.flags"]),
        response_code_details: text(map, &["response_code_details", "response.code_details"]),
        duration_ms: text(map, &["duration", "request.duration"]).and_then(|d| {
            d.parse::<u64>().ok().or_else(|| {
                d.parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite())
                    .map(|d| d.clamp(0.0, 1e12) as u64)
            })
        }),
        request_id: text(
            map,
            &["request_id", "x_request_id", "x-request-id", "request.id"],
        ),
        authority: text(map, &["authority", ":authority", "request.host"]),
        upstream_host: text(map, &["upstream_host", "upstream.address"]),
        upstream_cluster: text(
            map,
            &[
                "upstream_cluster",
                "upstream_cluster_raw",
                "upstream.cluster",
            ],
        ),
        downstream_remote_address: text(map, &["downstream_remote_address", "source.address"]),
        requested_server_name: text(
            map,
            &["requested_server_name", "connection.requested_server_name"],
        ),
        downstream_peer_uri_san: text(map, &["downstream_peer_uri_san", "source.principal"]),
        upstream_peer_uri_san: text(map, &["upstream_peer_uri_san", "destination.principal"]),
        // Istio's JSON keys, then its attribute vocabulary and the OTel names.
        bytes_received: text(
            map,
            &["bytes_received", "request.size", "http.request.body.size"],
        )
        .and_then(|b| crate::sizes::parse_size(&b)),
        bytes_sent: text(
            map,
            &["bytes_sent", "response.size", "http.response.body.size"],
        )
        .and_then(|b| crate::sizes::parse_size(&b)),
        trace_id: text(map, &["trace_id", "traceId"]),
        span_id: text(map, &["span_id", "spanId"]),
    }
}

pub fn parse_istio_json(line: &str) -> Result<AccessLogFields, CollectorError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(CollectorError::Malformed(format!(
            "JSON access log line of {} bytes is too long",
            line.len()
        )));
    }
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Ok(fields_from_map(&map)),
        Ok(_) => Err(CollectorError::Malformed(
            "JSON access log line is not an object".into(),
        )),
        Err(e) => Err(CollectorError::Malformed(format!(
            "JSON access log line: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/accesslog/istio_json.log");

    #[test]
    fn parses_istio_json_lines_with_nulls_and_string_numbers() {
        let lines: Vec<_> = FIXTURE
            .lines()
            .map(|l| parse_istio_json(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        let nginx = &lines[0];
        assert_eq!(nginx.upstream_host, None, "empty string is absent");
        assert_eq!(nginx.response_code, Some(200));
        assert_eq!(nginx.response_flags, None, "`-` is absent");
        assert_eq!(nginx.upstream_cluster.as_deref(), Some("inbound|80||"));
        let httpbin = &lines[1];
        assert_eq!(
            (httpbin.response_code, httpbin.duration_ms),
            (Some(418), Some(4)),
            "string-quoted numbers"
        );
        assert_eq!(httpbin.requested_server_name, None);
        let denied = &lines[2];
        assert_eq!(denied.response_code, Some(403));
        assert_eq!(
            denied.downstream_peer_uri_san.as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/cart")
        );
        assert_eq!(denied.duration_ms, Some(3));
    }

    #[test]
    fn byte_counts_read_from_numbers_and_strings_and_hostile_ones_are_absent() {
        let lines: Vec<_> = FIXTURE
            .lines()
            .map(|l| parse_istio_json(l).unwrap())
            .collect();
        assert_eq!(
            (lines[0].bytes_received, lines[0].bytes_sent),
            (Some(0), Some(37))
        );
        assert_eq!(
            (lines[1].bytes_received, lines[1].bytes_sent),
            (Some(0), Some(135))
        );
        assert_eq!((lines[2].bytes_received, lines[2].bytes_sent), (None, None));
        for hostile in [
            r#"{"bytes_received":-1,"bytes_sent":"-"}"#,
            r#"{"bytes_received":1.5,"bytes_sent":1e3}"#,
            r#"{"bytes_received":"12 kB","bytes_sent":18446744073709551615}"#,
            r#"{"bytes_received":true,"bytes_sent":[1]}"#,
        ] {
            let f = parse_istio_json(hostile).unwrap();
            assert_eq!((f.bytes_received, f.bytes_sent), (None, None), "{hostile}");
        }
        let f = parse_istio_json(r#"{"request.size":"10","response.size":20}"#).unwrap();
        assert_eq!((f.bytes_received, f.bytes_sent), (Some(10), Some(20)));
    }

    #[test]
    fn non_objects_and_broken_json_are_errors() {
        assert!(parse_istio_json("[1]").is_err());
        assert!(parse_istio_json("{").is_err());
        assert!(
            parse_istio_json(&format!("{{\"path\":\"{}\"}}", "a".repeat(MAX_LINE_BYTES))).is_err()
        );
        let f = parse_istio_json(r#"{"duration":-5e400}"#).unwrap_or_default();
        assert_eq!(f.duration_ms, None, "non-finite durations are absent");
    }
}
