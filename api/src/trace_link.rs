//! Links from trace ids to the operator's trace UI (`[api] trace_url_template`).
//!
//! Trace ids come from telemetry and are attacker-controlled: the id is percent-encoded
//! whole (every byte but `A-Z a-z 0-9 - . _ ~`), so it cannot leave its place in the URL
//! (no `/`, `?`, `#`, `&` or `..` of its own), and the template must be an http(s) URL,
//! so a link can never be `javascript:` or `data:`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The placeholder the template must contain.
pub const TRACE_ID_PLACEHOLDER: &str = "{trace_id}";

/// RFC 3986 unreserved characters stay; everything else is encoded.
const TRACE_ID_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Checks a template at config load: `http://` or `https://` with a host, and the
/// `{trace_id}` placeholder.
pub fn validate_template(template: &str) -> Result<(), String> {
    let lower = template.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| format!("{template:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.starts_with(TRACE_ID_PLACEHOLDER) {
        return Err(format!(
            "{template:?} has no host before {TRACE_ID_PLACEHOLDER}"
        ));
    }
    if !template.contains(TRACE_ID_PLACEHOLDER) {
        return Err(format!("{template:?} must contain {TRACE_ID_PLACEHOLDER}"));
    }
    if template
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{template:?} must not contain spaces or control characters"
        ));
    }
    Ok(())
}

/// The link for one trace id, or `None` without a template or for an empty id.
pub fn trace_url(template: Option<&str>, trace_id: &str) -> Option<String> {
    let template = template?;
    if trace_id.is_empty() {
        return None;
    }
    let encoded = utf8_percent_encode(trace_id, TRACE_ID_ENCODE).to_string();
    Some(template.replace(TRACE_ID_PLACEHOLDER, &encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_templates_with_a_host_and_the_placeholder_pass() {
        for ok in [
            "https://jaeger.example/trace/{trace_id}",
            "http://tempo:3200/explore?left={\"queries\":[{\"query\":\"{trace_id}\"}]}",
            "HTTPS://grafana.example/explore?traceId={trace_id}&x={trace_id}",
        ] {
            assert_eq!(validate_template(ok), Ok(()), "{ok}");
        }
        for bad in [
            "javascript:alert(1)//{trace_id}",
            "data:text/html,{trace_id}",
            "//jaeger.example/trace/{trace_id}",
            "ftp://jaeger.example/{trace_id}",
            "https://jaeger.example/trace/",
            "https:///{trace_id}",
            "https://{trace_id}",
            "https://jaeger.example/trace/{trace_id} x",
        ] {
            assert!(validate_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_id_is_encoded_whole() {
        let t = Some("https://jaeger.example/trace/{trace_id}");
        assert_eq!(
            trace_url(t, "4bf92f3577b34da6a3ce929d0e0e4736").as_deref(),
            Some("https://jaeger.example/trace/4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_url(t, "../x?y=1#<script>").as_deref(),
            Some("https://jaeger.example/trace/..%2Fx%3Fy%3D1%23%3Cscript%3E")
        );
        assert_eq!(trace_url(None, "abc"), None);
        assert_eq!(trace_url(t, ""), None);
    }
}
