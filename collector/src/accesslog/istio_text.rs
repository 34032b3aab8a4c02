//! Istio's default text access-log format:
//! `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//! %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
//! "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
//! %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//! %REQUESTED_SERVER_NAME% %ROUTE_NAME%`

use super::fields::{AccessLogFields, present};
use crate::CollectorError;

/// Splits on spaces, keeping `"quoted strings"` and `[bracketed]` tokens whole.
fn tokens(line: &str) -> Result<Vec<&str>, CollectorError> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let (token, after) = match rest.as_bytes()[0] {
            b'"' => {
                let end = rest[1..].find('"').ok_or_else(|| CollectorError::Malformed("unterminated quote in access log line".into()))?;
                (&rest[1..1 + end], &rest[end + 2..])
            }
            b'[' => {
                let end = rest.find(']').ok_or_else(|| CollectorError::Malformed("unterminated [ in access log line".into()))?;
                (&rest[1..end], &rest[end + 1..])
            }
            _ => match rest.find(' ') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            },
        };
        out.push(token);
        rest = after.trim_start();
    }
    Ok(out)
}

pub fn parse_istio_text(line: &str) -> Result<AccessLogFields, CollectorError> {
    let t = tokens(line)?;
    if t.len() < 17 {
        return Err(CollectorError::Malformed(format!(
            "istio access log line has {} fields, expected at least 17",
            t.len()
        )));
    }
    let mut request = t[1].split(' ');
    let get = |i: usize| t.get(i).and_then(|s| present(s));
    Ok(AccessLogFields {
        start_time: present(t[0]),
        method: request.next().and_then(present),
        path: request.next().and_then(present),
        protocol: request.next().and_then(present),
        response_code: get(2).and_then(|c| c.parse().ok()),
        response_flags: get(3),
        response_code_details: get(4),
        duration_ms: get(9).and_then(|d| d.parse().ok()),
        request_id: get(13),
        authority: get(14),
        upstream_host: get(15),
        upstream_cluster: get(16),
        downstream_remote_address: get(19),
        requested_server_name: get(20),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From Istio's "Envoy Access Logs" task.
    pub const ISTIO_DOC_LINE: &str = r#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"#;

    #[test]
    fn parses_the_istio_docs_example() {
        let f = parse_istio_text(ISTIO_DOC_LINE).unwrap();
        assert_eq!(f.method.as_deref(), Some("GET"));
        assert_eq!(f.path.as_deref(), Some("/status/418"));
        assert_eq!(f.response_code, Some(418));
        assert_eq!(f.response_flags, None);
        assert_eq!(f.duration_ms, Some(4));
        assert_eq!(f.request_id.as_deref(), Some("84961386-6d84-929d-98bd-c5aee93b5c88"));
        assert_eq!(f.upstream_cluster.as_deref(), Some("outbound|8000||httpbin.foo.svc.cluster.local"));
        assert_eq!(f.requested_server_name, None);
    }

    #[test]
    fn short_or_broken_lines_are_clear_errors() {
        assert!(parse_istio_text("").is_err());
        assert!(parse_istio_text("[2020-11-25T21:26:18.409Z] \"GET /x").is_err());
        let e = parse_istio_text("a b c").unwrap_err();
        assert!(e.to_string().contains("expected at least 17"), "{e}");
    }
}
