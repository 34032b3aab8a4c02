//! Istio's JSON access-log encoding (`accessLogEncoding: JSON`) and the same keys as
//! OTLP log attributes (Envoy's OpenTelemetry access logger).

use serde_json::{Map, Value};

use super::fields::{AccessLogFields, present};
use crate::CollectorError;

fn text(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match map.get(*k)? {
        Value::String(s) => present(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

pub fn fields_from_map(map: &Map<String, Value>) -> AccessLogFields {
    AccessLogFields {
        start_time: text(map, &["start_time", "startTime", "timestamp"]),
        method: text(map, &["method", "request_method", ":method"]),
        path: text(map, &["path", "request_path", "x_envoy_original_path", ":path"]),
        protocol: text(map, &["protocol"]),
        response_code: text(map, &["response_code", "responseCode", "status"]).and_then(|c| c.parse().ok()),
        response_flags: text(map, &["response_flags"]),
        response_code_details: text(map, &["response_code_details"]),
        duration_ms: text(map, &["duration"]).and_then(|d| d.parse::<f64>().ok()).map(|d| d.max(0.0) as u64),
        request_id: text(map, &["request_id", "x_request_id", "x-request-id"]),
        authority: text(map, &["authority", ":authority"]),
        upstream_host: text(map, &["upstream_host"]),
        upstream_cluster: text(map, &["upstream_cluster"]),
        downstream_remote_address: text(map, &["downstream_remote_address"]),
        requested_server_name: text(map, &["requested_server_name"]),
        downstream_peer_uri_san: text(map, &["downstream_peer_uri_san", "source.principal"]),
        upstream_peer_uri_san: text(map, &["upstream_peer_uri_san", "destination.principal"]),
        trace_id: text(map, &["trace_id", "traceparent_trace_id"]),
        span_id: text(map, &["span_id"]),
    }
}

pub fn parse_istio_json(line: &str) -> Result<AccessLogFields, CollectorError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Ok(fields_from_map(&map)),
        Ok(_) => Err(CollectorError::Malformed("JSON access log line is not an object".into())),
        Err(e) => Err(CollectorError::Malformed(format!("JSON access log line: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_json_lines_with_peer_identities() {
        let line = r#"{"start_time":"2024-05-01T10:00:00.000Z","method":"DELETE","path":"/admin/users/42","protocol":"HTTP/1.1","response_code":403,"response_flags":"-","response_code_details":"rbac_access_denied_matched_policy[none]","duration":3,"request_id":"r-1","authority":"users:8080","upstream_host":"10.0.0.7:8080","upstream_cluster":"inbound|8080||","downstream_peer_uri_san":"spiffe://cluster.local/ns/shop/sa/cart","requested_server_name":"outbound_.8080_._.users.shop.svc.cluster.local"}"#;
        let f = parse_istio_json(line).unwrap();
        assert_eq!(f.response_code, Some(403));
        assert_eq!(f.response_flags, None, "`-` is absent");
        assert_eq!(f.downstream_peer_uri_san.as_deref(), Some("spiffe://cluster.local/ns/shop/sa/cart"));
        assert_eq!(f.duration_ms, Some(3));
        assert!(parse_istio_json("[1]").is_err());
        assert!(parse_istio_json("{").is_err());
    }
}
