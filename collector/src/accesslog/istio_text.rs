//! Istio's default text access-log format (`meshConfig.accessLogEncoding: TEXT`):
//!
//! ```text
//! [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//! %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
//! "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
//! %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//! %REQUESTED_SERVER_NAME% %ROUTE_NAME%
//! ```
//!
//! 22 fields; `-` (or `""`) means absent. Two optional trailing fields are read when
//! present — the common customisation appending `%DOWNSTREAM_PEER_URI_SAN%` and then
//! `%UPSTREAM_PEER_URI_SAN%`. Lines with 17 to 21 fields (addresses dropped, as in some
//! shortened examples) keep the first 17 positional fields and find the mTLS SNI by its
//! `outbound_.` prefix among the rest.

use eastwest_model::CompactString;

use super::fields::{AccessLogFields, present};
use crate::CollectorError;

const FULL_FIELDS: usize = 22;
const MIN_FIELDS: usize = 17;
/// A real line has 22–24 fields; far more is garbage and not worth splitting further.
const MAX_FIELDS: usize = 64;

/// Splits on spaces, keeping `"quoted strings"` and `[bracketed]` tokens whole.
fn tokens(line: &str) -> Result<Vec<&str>, CollectorError> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() && out.len() < MAX_FIELDS {
        let (token, after) = match rest.as_bytes()[0] {
            b'"' => {
                let end = rest[1..].find('"').ok_or_else(|| {
                    CollectorError::Malformed("unterminated quote in access log line".into())
                })?;
                (&rest[1..1 + end], &rest[end + 2..])
            }
            b'[' => {
                let end = rest.find(']').ok_or_else(|| {
                    CollectorError::Malformed("unterminated [ in access log line".into())
                })?;
                (&rest[1..end], &rest[end + 1..])
            }
            _ => match rest.find([' ', '\t']) {
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
    if t.len() < MIN_FIELDS {
        return Err(CollectorError::Malformed(format!(
            "istio access log line has {} fields, expected at least {MIN_FIELDS}",
            t.len()
        )));
    }
    let mut request = t[1].split(' ').filter(|s| !s.is_empty());
    let get = |i: usize| t.get(i).and_then(|s| present(s));
    let full = t.len() >= FULL_FIELDS;
    let requested_server_name = if full {
        get(20)
    } else {
        t[MIN_FIELDS..]
            .iter()
            .find(|s| s.starts_with("outbound_."))
            .and_then(|s| present(s))
    };
    Ok(AccessLogFields {
        start_time: present(t[0]),
        method: request.next().and_then(present),
        path: request.next().and_then(present),
        protocol: request.next().and_then(present),
        response_code: get(2).and_then(|c| c.parse().ok()),
        response_flags: get(3),
        response_code_details: get(4),
        duration_ms: get(9).and_then(|d| d.parse().ok()),
        bytes_received: t.get(7).and_then(|b| crate::sizes::parse_size(b)),
        bytes_sent: t.get(8).and_then(|b| crate::sizes::parse_size(b)),
        request_id: get(13),
        authority: get(14),
        upstream_host: get(15),
        upstream_cluster: get(16),
        downstream_remote_address: if full { get(19) } else { None },
        requested_server_name,
        downstream_peer_uri_san: if full { get(22) } else { None },
        upstream_peer_uri_san: if full { get(23) } else { None },
        ..Default::default()
    })
}

/// Renders fields in the text format (absent → `-`), with the two peer-SAN extras when
/// either is set. Fields the parser does not read are written as `-`. Used by
/// tests and seed corpora; a parse of the output gives the fields back.
pub fn format_istio_text(f: &AccessLogFields) -> String {
    let d = |v: &Option<CompactString>| v.as_deref().unwrap_or("-").to_string();
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |x| x.to_string());
    let mut line = format!(
        "[{}] \"{} {} {}\" {} {} {} - \"-\" {} {} {} - \"-\" \"-\" \"{}\" \"{}\" \"{}\" {} - - {} {} default",
        d(&f.start_time),
        d(&f.method),
        d(&f.path),
        d(&f.protocol),
        n(f.response_code.map(u64::from)),
        d(&f.response_flags),
        d(&f.response_code_details),
        n(f.bytes_received),
        n(f.bytes_sent),
        n(f.duration_ms),
        d(&f.request_id),
        d(&f.authority),
        d(&f.upstream_host),
        d(&f.upstream_cluster),
        d(&f.downstream_remote_address),
        d(&f.requested_server_name),
    );
    if f.downstream_peer_uri_san.is_some() || f.upstream_peer_uri_san.is_some() {
        line.push_str(&format!(
            " {} {}",
            d(&f.downstream_peer_uri_san),
            d(&f.upstream_peer_uri_san)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/accesslog/istio_text.log");

    fn fixture_line(contains: &str) -> &'static str {
        FIXTURE
            .lines()
            .find(|l| !l.starts_with('#') && l.contains(contains))
            .unwrap()
    }

    #[test]
    fn parses_the_istio_docs_outbound_example() {
        let f = parse_istio_text(fixture_line("outbound|8000||httpbin")).unwrap();
        assert_eq!(f.start_time.as_deref(), Some("2020-11-25T21:26:18.409Z"));
        assert_eq!(f.method.as_deref(), Some("GET"));
        assert_eq!(f.path.as_deref(), Some("/status/418"));
        assert_eq!(f.protocol.as_deref(), Some("HTTP/1.1"));
        assert_eq!(f.response_code, Some(418));
        assert_eq!(f.response_flags, None);
        assert_eq!(f.response_code_details.as_deref(), Some("via_upstream"));
        assert_eq!(f.duration_ms, Some(4));
        assert_eq!(
            f.request_id.as_deref(),
            Some("84961386-6d84-929d-98bd-c5aee93b5c88")
        );
        assert_eq!(f.authority.as_deref(), Some("httpbin:8000"));
        assert_eq!(f.upstream_host.as_deref(), Some("10.44.1.27:80"));
        assert_eq!(
            f.upstream_cluster.as_deref(),
            Some("outbound|8000||httpbin.foo.svc.cluster.local")
        );
        assert_eq!(
            f.downstream_remote_address.as_deref(),
            Some("10.44.1.23:46520")
        );
        assert_eq!(f.requested_server_name, None);
    }

    #[test]
    fn parses_inbound_failure_and_shortened_lines() {
        let f = parse_istio_text(fixture_line("inbound|8080||")).unwrap();
        assert_eq!(
            f.requested_server_name.as_deref(),
            Some("outbound_.8080_._.my-service.default.svc.cluster.local")
        );
        let f = parse_istio_text(fixture_line("503 UC")).unwrap();
        assert_eq!(
            (f.response_code, f.response_flags.as_deref(), f.duration_ms),
            (Some(503), Some("UC"), Some(30004))
        );
        // Shortened example with the addresses left out and an empty `""` upstream host.
        let f = parse_istio_text(fixture_line("\"nginx\" \"\"")).unwrap();
        assert_eq!(f.upstream_host, None);
        assert_eq!(f.upstream_cluster.as_deref(), Some("inbound|80||"));
        assert_eq!(
            f.requested_server_name.as_deref(),
            Some("outbound_.80_._.nginx.default.svc.cluster.local")
        );
    }

    #[test]
    fn reads_the_peer_san_extras() {
        let f = parse_istio_text(fixture_line("spiffe://")).unwrap();
        assert_eq!(
            f.downstream_peer_uri_san.as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/frontend")
        );
        assert_eq!(f.upstream_peer_uri_san, None);
    }

    #[test]
    fn every_fixture_line_parses() {
        for line in FIXTURE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            parse_istio_text(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }

    #[test]
    fn byte_counts_are_the_request_and_response_bodies() {
        let f = parse_istio_text(fixture_line("outbound|8000||httpbin")).unwrap();
        assert_eq!((f.bytes_received, f.bytes_sent), (Some(0), Some(135)));
        let f = parse_istio_text(fixture_line("503 UC")).unwrap();
        assert_eq!((f.bytes_received, f.bytes_sent), (Some(156), Some(91)));
        let (call, _) = f
            .into_call(
                &eastwest_model::Workload::new("web").in_namespace("shop"),
                0,
            )
            .unwrap();
        assert_eq!(
            (call.request_bytes, call.response_bytes),
            (Some(156), Some(91))
        );
        // `-` and hostile values are absent; the rest of the line still parses.
        let line = fixture_line("outbound|8000||httpbin");
        for (received, sent) in [("-", "-"), ("-1", "1.5"), ("1e3", "99999999999999999999")] {
            let hostile = line.replacen(" 0 135 4 ", &format!(" {received} {sent} 4 "), 1);
            let f = parse_istio_text(&hostile).unwrap();
            assert_eq!((f.bytes_received, f.bytes_sent), (None, None), "{hostile}");
            assert_eq!((f.response_code, f.duration_ms), (Some(418), Some(4)));
        }
    }

    #[test]
    fn short_or_broken_lines_are_clear_errors() {
        assert!(parse_istio_text("").is_err());
        assert!(parse_istio_text("[2020-11-25T21:26:18.409Z] \"GET /x").is_err());
        let e = parse_istio_text("a b c").unwrap_err();
        assert!(e.to_string().contains("expected at least 17"), "{e}");
    }
}
