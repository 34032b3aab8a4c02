//! Defences of the HTTP edge against web pages the operator happens to visit.
//!
//! Without a token the API trusts whoever can reach its (loopback) socket, and a browser
//! on that machine can: a page can point a name it controls at 127.0.0.1 (DNS rebinding)
//! and read the API as its own origin, or post a form to it (CSRF). So, on every route:
//!
//! * **Host.** The `Host` header must be a loopback name or address, an IP literal of the
//!   bound address (any, when bound to `0.0.0.0`/`::` — a probe's pod IP), the host of
//!   `public_url`, or an `allowed_hosts` entry; otherwise 421. A rebinding page's requests
//!   carry the page's own name, and an IP literal cannot be rebound.
//! * **State-changing requests** (any method but GET and HEAD) must carry
//!   `X-Eastwest-Request` or `Authorization`: a page can send neither cross-site without
//!   a CORS preflight, which this server never grants. An `Origin`, when present, must be
//!   this server (the `Host` it was sent to) or `public_url`'s origin. Otherwise 403.
//! * **Every response** forbids framing and sniffing and sends no referrer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::uri::{Authority, Uri};
use axum::http::{Method, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::config::ApiConfig;
use crate::metrics::{ApiMetrics, Refusal};

/// The header the dashboard (and scripts without a token) send on state-changing
/// requests. Any non-empty value; `1` by convention.
pub(crate) const REQUEST_HEADER: &str = "x-eastwest-request";

/// The `frame-ancestors` directive added to every Content-Security-Policy.
const FRAME_ANCESTORS: &str = "frame-ancestors 'none'";
/// The policy of responses that bring none of their own (JSON, metrics, errors).
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// Longest `Host`/`Origin` value quoted back in an error.
const MAX_QUOTED: usize = 100;

/// A host as written in `Host`, `Origin` or `allowed_hosts`: an IP (brackets removed) or
/// a lowercase name without its trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn parse(host: &str) -> Self {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.trim_end_matches('.').to_ascii_lowercase()),
        }
    }

    /// Loopback addresses and `localhost` / `*.localhost` (RFC 6761: always loopback, and
    /// browsers resolve them so themselves).
    fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback() || ipv4_mapped(ip).is_some_and(|v4| v4.is_loopback()),
            Host::Name(name) => name == "localhost" || name.ends_with(".localhost"),
        }
    }
}

fn ipv4_mapped(ip: &IpAddr) -> Option<std::net::Ipv4Addr> {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        IpAddr::V4(_) => None,
    }
}

/// `host` or `host:port`, as in a `Host` header or an `allowed_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostEntry {
    host: Host,
    port: Option<u16>,
}

impl HostEntry {
    /// Parses an authority without user info, scheme, path or wildcard.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let quoted = quote(text);
        if text.is_empty() {
            return Err("an empty host".into());
        }
        if text.contains(['@', '/', '*', ' ']) {
            return Err(format!(
                "{quoted} is not a host or host:port (no scheme, path, user or wildcard)"
            ));
        }
        let authority: Authority = text
            .parse()
            .map_err(|_| format!("{quoted} is not a host or host:port"))?;
        if authority.host().is_empty() || (authority.as_str().ends_with(':')) {
            return Err(format!("{quoted} is not a host or host:port"));
        }
        Ok(Self {
            host: Host::parse(authority.host()),
            port: authority.port_u16(),
        })
    }

    /// Whether this entry admits `request`: same host, and same port if it names one.
    fn admits(&self, request: &HostEntry) -> bool {
        self.host == request.host && self.port.is_none_or(|p| request.port == Some(p))
    }
}

/// `scheme://host:port` with the port made explicit, as in an `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: Host,
    port: u16,
}

impl Origin {
    fn parse(text: &str) -> Option<Self> {
        let uri: Uri = text.parse().ok()?;
        let https = match uri.scheme_str()? {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let authority = uri.authority()?;
        if authority.as_str().contains('@') || !matches!(uri.path(), "" | "/") {
            return None;
        }
        Some(Self {
            https,
            host: Host::parse(authority.host()),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// Same host and port as the `Host` the request was sent to. The scheme is not
    /// compared: behind a TLS-terminating proxy the server cannot see it, and one
    /// host:port serves one scheme.
    fn is_host(&self, host: &HostEntry) -> bool {
        let default = if self.https { 443 } else { 80 };
        self.host == host.host && self.port == host.port.unwrap_or(default)
    }
}

/// What the edge checks requests against: built once from the config and the address
/// the listener is bound to.
pub(crate) struct Guard {
    bind: IpAddr,
    allowed: Vec<HostEntry>,
    public_origin: Option<Origin>,
    metrics: Arc<ApiMetrics>,
}

impl Guard {
    pub(crate) fn new(config: &ApiConfig, bound: SocketAddr, metrics: Arc<ApiMetrics>) -> Self {
        // validate() has parsed every entry already; an unparsable one cannot admit anything.
        let mut allowed: Vec<HostEntry> = config
            .allowed_hosts
            .iter()
            .filter_map(|e| HostEntry::parse(e).ok())
            .collect();
        let public_origin = config.public_url.as_deref().and_then(|url| {
            let uri: Uri = url.parse().ok()?;
            let origin = format!("{}://{}", uri.scheme_str()?, uri.authority()?);
            Origin::parse(&origin)
        });
        if let Some(origin) = &public_origin {
            allowed.push(HostEntry {
                host: origin.host.clone(),
                port: None,
            });
        }
        Self {
            bind: bound.ip(),
            allowed,
            public_origin,
            metrics,
        }
    }

    fn host_allowed(&self, request: &HostEntry) -> bool {
        if request.host.is_loopback() {
            return true;
        }
        if let Host::Ip(ip) = &request.host
            && (self.bind.is_unspecified() || *ip == self.bind)
        {
            return true;
        }
        self.allowed.iter().any(|entry| entry.admits(request))
    }

    fn origin_allowed(&self, origin: &str, host: Option<&HostEntry>) -> bool {
        let Some(origin) = Origin::parse(origin) else {
            return false; // `null` (sandboxed frames, file://) or garbage
        };
        host.is_some_and(|h| origin.is_host(h)) || self.public_origin.as_ref() == Some(&origin)
    }

    /// The request's refusal, if any. Requests without a `Host` (and no authority in the
    /// URI, as HTTP/2 sends it) pass the Host check: every browser sends one.
    fn check(&self, parts: &Parts) -> Result<(), (Refusal, ApiError)> {
        let raw_host = match parts.headers.get(header::HOST) {
            Some(v) => Some(v.to_str().unwrap_or("\u{fffd}").to_string()),
            None => parts.uri.authority().map(|a| a.as_str().to_string()),
        };
        let host = match raw_host.as_deref().map(HostEntry::parse) {
            None => None,
            Some(Ok(h)) if self.host_allowed(&h) => Some(h),
            Some(_) => {
                return Err((
                    Refusal::Host,
                    ApiError::MisdirectedHost(format!(
                        "this server does not answer to host {} (add it to [api] allowed_hosts)",
                        quote(raw_host.as_deref().unwrap_or_default())
                    )),
                ));
            }
        };
        if parts.method == Method::GET || parts.method == Method::HEAD {
            return Ok(());
        }
        if let Some(origin) = parts.headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("\u{fffd}");
            if !self.origin_allowed(origin, host.as_ref()) {
                return Err((
                    Refusal::Origin,
                    ApiError::Forbidden(format!(
                        "cross-origin {} from {} refused",
                        parts.method,
                        quote(origin)
                    )),
                ));
            }
        }
        let has = |name: &str| {
            parts
                .headers
                .get(name)
                .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
        };
        if !has(REQUEST_HEADER) && !has(header::AUTHORIZATION.as_str()) {
            return Err((
                Refusal::MissingHeader,
                ApiError::Forbidden(format!(
                    "{} needs the header `X-Eastwest-Request: 1` (or an Authorization header), \
                     which a web page cannot send to another site",
                    parts.method
                )),
            ));
        }
        Ok(())
    }
}

fn quote(text: &str) -> String {
    let short: String = text.chars().take(MAX_QUOTED).collect();
    format!("{short:?}")
}

/// Refuses requests with a foreign `Host` (421) and forged state-changing requests (403).
pub(crate) async fn check_request(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Err((reason, error)) = guard.check(&parts) {
        guard.metrics.count_refusal(reason);
        tracing::debug!(%error, uri = %parts.uri, "request refused");
        return error.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Adds the anti-framing and anti-sniffing headers to every response, refusals included.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(response.headers_mut());
    response
}

fn add_security_headers(headers: &mut HeaderMap) {
    // The dashboard brings its own policy; it gains `frame-ancestors` rather than a second
    // policy header, so there is one policy to read.
    let csp = match headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
    {
        Some(existing) if existing.contains("frame-ancestors") => None,
        Some(existing) => HeaderValue::from_str(&format!(
            "{}; {FRAME_ANCESTORS}",
            existing.trim_end_matches([';', ' '])
        ))
        .ok(),
        None => Some(HeaderValue::from_static(DEFAULT_CSP)),
    };
    if let Some(csp) = csp {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn guard(config: ApiConfig) -> Guard {
        let bound = config.addr;
        Guard::new(&config, bound, Arc::new(ApiMetrics::default()))
    }

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().method(method).uri("/api/v1/alerts");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn refusal(g: &Guard, method: &str, headers: &[(&str, &str)]) -> Option<Refusal> {
        g.check(&parts(method, headers)).err().map(|(r, _)| r)
    }

    #[test]
    fn loopback_hosts_pass_and_rebound_names_do_not() {
        let g = guard(ApiConfig::default());
        for host in [
            "127.0.0.1:4320",
            "127.0.0.1",
            "localhost:4320",
            "LOCALHOST.",
            "app.localhost:9999",
            "[::1]:4320",
            "127.8.9.1:80",
            "[::ffff:127.0.0.1]:4320",
        ] {
            assert_eq!(refusal(&g, "GET", &[("host", host)]), None, "{host}");
        }
        for host in [
            "rebind.example",
            "rebind.example:4320",
            "localhost.rebind.example",
            "127.0.0.1.rebind.example",
            "10.0.0.5:4320",
            "",
            "a@127.0.0.1",
        ] {
            assert_eq!(
                refusal(&g, "GET", &[("host", host)]),
                Some(Refusal::Host),
                "{host}"
            );
        }
        assert_eq!(refusal(&g, "GET", &[]), None, "no Host: not a browser");
    }

    #[test]
    fn ip_literals_of_the_bound_address_pass() {
        let any = guard(ApiConfig {
            addr: "0.0.0.0:4320".parse().unwrap(),
            api_token: Some("t".into()),
            ..Default::default()
        });
        assert_eq!(refusal(&any, "GET", &[("host", "10.1.2.3:4320")]), None);
        assert_eq!(refusal(&any, "GET", &[("host", "[fd00::7]:4320")]), None);
        assert_eq!(
            refusal(&any, "GET", &[("host", "eastwest.monitoring.svc:4320")]),
            Some(Refusal::Host)
        );
        let one = guard(ApiConfig {
            addr: "10.1.2.3:4320".parse().unwrap(),
            api_token: Some("t".into()),
            ..Default::default()
        });
        assert_eq!(refusal(&one, "GET", &[("host", "10.1.2.3:4320")]), None);
        assert_eq!(
            refusal(&one, "GET", &[("host", "10.1.2.4:4320")]),
            Some(Refusal::Host)
        );
    }

    #[test]
    fn configured_names_and_public_url_pass() {
        let g = guard(ApiConfig {
            allowed_hosts: vec!["eastwest.monitoring.svc".into(), "ew.example:8443".into()],
            public_url: Some("https://Eastwest.Example.com/base".into()),
            ..Default::default()
        });
        for host in [
            "eastwest.monitoring.svc",
            "EASTWEST.monitoring.svc:4320",
            "ew.example:8443",
            "eastwest.example.com",
        ] {
            assert_eq!(refusal(&g, "GET", &[("host", host)]), None, "{host}");
        }
        for host in ["ew.example", "ew.example:80", "monitoring.svc"] {
            assert_eq!(
                refusal(&g, "GET", &[("host", host)]),
                Some(Refusal::Host),
                "{host}"
            );
        }
    }

    #[test]
    fn state_changing_requests_need_the_header_and_a_matching_origin() {
        let g = guard(ApiConfig {
            public_url: Some("https://eastwest.example.com".into()),
            ..Default::default()
        });
        let host = ("host", "127.0.0.1:4320");
        let marked = ("x-eastwest-request", "1");
        // What a cross-site form or text/plain fetch sends.
        assert_eq!(
            refusal(
                &g,
                "POST",
                &[
                    host,
                    ("origin", "https://evil.example"),
                    ("content-type", "text/plain")
                ]
            ),
            Some(Refusal::Origin)
        );
        assert_eq!(
            refusal(&g, "POST", &[host, ("content-type", "text/plain")]),
            Some(Refusal::MissingHeader),
            "no Origin (an old browser, a redirect) still needs the header"
        );
        assert_eq!(
            refusal(&g, "POST", &[host, ("x-eastwest-request", " ")]),
            Some(Refusal::MissingHeader)
        );
        assert_eq!(
            refusal(
                &g,
                "POST",
                &[host, marked, ("origin", "https://evil.example")]
            ),
            Some(Refusal::Origin),
            "a marked request from another origin is still refused"
        );
        assert_eq!(
            refusal(&g, "POST", &[host, marked, ("origin", "null")]),
            Some(Refusal::Origin)
        );
        assert_eq!(
            refusal(
                &g,
                "POST",
                &[host, marked, ("origin", "http://127.0.0.1:9999")]
            ),
            Some(Refusal::Origin),
            "another port is another origin"
        );
        assert_eq!(
            refusal(
                &g,
                "POST",
                &[host, marked, ("origin", "http://127.0.0.1:4320")]
            ),
            None
        );
        assert_eq!(refusal(&g, "POST", &[host, marked]), None);
        assert_eq!(
            refusal(&g, "POST", &[host, ("authorization", "Bearer x")]),
            None,
            "a bearer token cannot be sent cross-site either"
        );
        assert_eq!(
            refusal(
                &g,
                "POST",
                &[
                    ("host", "127.0.0.1:4320"),
                    marked,
                    ("origin", "https://eastwest.example.com")
                ]
            ),
            None,
            "the public URL's origin, behind a proxy that rewrites Host"
        );
        assert_eq!(
            refusal(
                &g,
                "POST",
                &[
                    ("host", "eastwest.example.com"),
                    marked,
                    ("origin", "https://eastwest.example.com")
                ]
            ),
            None
        );
        for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert_eq!(
                refusal(&g, method, &[host]),
                Some(Refusal::MissingHeader),
                "{method}"
            );
        }
        assert_eq!(
            refusal(&g, "GET", &[host, ("origin", "https://evil.example")]),
            None,
            "reads are protected by the Host check and the absence of CORS"
        );
    }

    #[test]
    fn origins_compare_default_ports() {
        let h = HostEntry::parse("eastwest.example.com").unwrap();
        assert!(
            Origin::parse("https://eastwest.example.com")
                .unwrap()
                .is_host(&h)
        );
        assert!(
            Origin::parse("http://eastwest.example.com:80")
                .unwrap()
                .is_host(&h)
        );
        let h443 = HostEntry::parse("eastwest.example.com:443").unwrap();
        assert!(
            Origin::parse("https://eastwest.example.com")
                .unwrap()
                .is_host(&h443)
        );
        assert!(
            !Origin::parse("http://eastwest.example.com")
                .unwrap()
                .is_host(&h443)
        );
        assert!(Origin::parse("ftp://x").is_none());
        assert!(Origin::parse("http://x/path").is_none());
    }

    #[test]
    fn security_headers_extend_an_existing_policy() {
        let mut headers = HeaderMap::new();
        add_security_headers(&mut headers);
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], DEFAULT_CSP);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self';"),
        );
        add_security_headers(&mut headers);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'; frame-ancestors 'none'"
        );
        assert_eq!(
            headers
                .get_all(header::CONTENT_SECURITY_POLICY)
                .iter()
                .count(),
            1
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = HostEntry::parse(&s);
            let _ = Origin::parse(&s);
        }

        /// No name outside loopback passes without configuration: whatever a rebinding
        /// attacker registers is refused.
        #[test]
        fn unconfigured_names_are_refused(name in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){1,3}") {
            prop_assume!(!name.ends_with(".localhost"));
            let g = guard(ApiConfig::default());
            prop_assert_eq!(refusal(&g, "GET", &[("host", name.as_str())]), Some(Refusal::Host));
        }
    }
}
