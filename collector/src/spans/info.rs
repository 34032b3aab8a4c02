//! One span reduced to what pairing and calls need, across Istio, Linkerd and both OTel
//! HTTP/RPC conventions.

use std::borrow::Cow;

use eastwest_model::{CompactString, Protocol, ToCompactString, Workload, format_compact};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};

use super::attributes::{Attrs, Key, KeyIndex, ascii_upper, truncate, truncated};
use super::routes::{normalize_template, template_and_raw};
use super::sampling::weight_from_tracestate;
use super::shared_names::shared;
use super::workload::{
    own_workload, parse_upstream_cluster, spiffe_service_account, split_k8s_host, url_authority,
    url_path,
};

/// Body sizes, by convention: current semconv (`http.*.body.size`), the pre-1.21 names,
/// the tags Envoy's tracer sets on sidecar spans (`request_size` = bytes received from
/// downstream, `response_size` = bytes sent to it, i.e. the two bodies), the old
/// uncompressed lengths, and last `http.*.size` (Zipkin's body size; in OTel semconv the
/// whole message with headers, close enough when nothing else is there). gRPC message
/// sizes (`rpc.message.*_size`) are attributes of per-message span *events*, not of the
/// span, and are not read.
const REQUEST_SIZE_KEYS: [Key; 5] = [
    Key::HttpRequestBodySize,
    Key::HttpRequestContentLength,
    Key::EnvoyRequestSize,
    Key::HttpRequestContentLengthUncompressed,
    Key::HttpRequestSize,
];
const RESPONSE_SIZE_KEYS: [Key; 5] = [
    Key::HttpResponseBodySize,
    Key::HttpResponseContentLength,
    Key::EnvoyResponseSize,
    Key::HttpResponseContentLengthUncompressed,
    Key::HttpResponseSize,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// CLIENT or PRODUCER: keyed by its own span id.
    Caller,
    /// SERVER or CONSUMER: keyed by its parent span id.
    Callee,
}

/// The fields of a span that span reading looks at, besides its attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpanHead<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub trace_state: &'a str,
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// The span's status is ERROR.
    pub status_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanInfo {
    /// Ids as integers: pairing keys are hashed and compared millions of times a
    /// second; they become hex only on the calls that are emitted.
    pub trace_id: u128,
    pub span_id: u64,
    /// `None` for a root span.
    pub parent_id: Option<u64>,
    pub side: Side,
    pub start_ns: i64,
    pub duration_ns: u64,
    pub workload: Workload,
    pub version: Option<CompactString>,
    pub protocol: Protocol,
    pub method: CompactString,
    /// Route template (no method prefix): the reported template (`http.route`), else
    /// the raw path templated by its look.
    pub route: Option<CompactString>,
    /// Whether `route` is a template the span reported (else a guess from a raw path,
    /// matched against the callee's known templates when the call is built).
    pub route_reported: bool,
    /// The raw path, normalised, when it differs from the guessed `route`.
    pub raw_path: Option<CompactString>,
    pub status: Option<u32>,
    pub error: bool,
    pub mtls: Option<bool>,
    /// On a callee: the peer identity it observed on the connection (mTLS), which wins
    /// over the caller's claim. (A side's own identity is `workload.principal`.)
    pub source_principal: Option<CompactString>,
    /// On a caller: the identity it expects of its callee.
    pub destination_principal: Option<CompactString>,
    /// Name of the other side when it emits no span (virtual peer).
    pub peer: Option<Workload>,
    /// The address the caller connected to, when it is an IP literal (resolved through
    /// the pod IPs workloads report).
    pub peer_ip: Option<CompactString>,
    /// `k8s.pod.ip` of the emitting pod.
    pub pod_ip: Option<CompactString>,
    pub destination_address: Option<CompactString>,
    pub response_flags: Option<CompactString>,
    pub request_id: Option<CompactString>,
    pub weight: f64,
    /// Request and response body bytes as this side saw them.
    pub request_bytes: Option<u64>,
    pub response_bytes: Option<u64>,
}

/// Heap bytes of a string: none while it is short enough to be stored inline.
fn heap(s: &CompactString) -> usize {
    if s.is_heap_allocated() {
        s.capacity()
    } else {
        0
    }
}

fn opt_heap(s: &Option<CompactString>) -> usize {
    s.as_ref().map_or(0, heap)
}

fn workload_heap(w: &Workload) -> usize {
    heap(&w.service) + opt_heap(&w.namespace) + opt_heap(&w.principal)
}

impl SpanInfo {
    /// Bytes this span holds on the heap (its strings), beyond its inline size.
    pub fn heap_bytes(&self) -> usize {
        workload_heap(&self.workload)
            + self.peer.as_ref().map_or(0, workload_heap)
            + heap(&self.method)
            + [
                &self.version,
                &self.route,
                &self.raw_path,
                &self.peer_ip,
                &self.pod_ip,
                &self.source_principal,
                &self.destination_principal,
                &self.destination_address,
                &self.response_flags,
                &self.request_id,
            ]
            .into_iter()
            .map(opt_heap)
            .sum::<usize>()
    }

    /// `None` for INTERNAL/unspecified spans and spans with unusable ids.
    pub fn from_span(span: &Span, resource: &KeyIndex<'_>) -> Option<Self> {
        let head = SpanHead {
            trace_id: &span.trace_id,
            span_id: &span.span_id,
            parent_span_id: &span.parent_span_id,
            trace_state: &span.trace_state,
            name: &span.name,
            kind: span.kind,
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            status_error: span
                .status
                .as_ref()
                .is_some_and(|s| s.code == StatusCode::Error as i32),
        };
        Self::from_parts(&head, &Attrs::with_resource(&span.attributes, resource))
    }

    /// The same from a span's fields and indexed attributes, wherever they were read.
    pub fn from_parts(span: &SpanHead<'_>, attrs: &Attrs<'_>) -> Option<Self> {
        let side = match SpanKind::try_from(span.kind).ok()? {
            SpanKind::Client | SpanKind::Producer => Side::Caller,
            SpanKind::Server | SpanKind::Consumer => Side::Callee,
            _ => return None,
        };
        if span.trace_id.len() != 16
            || span.span_id.len() != 8
            || span.trace_id.iter().all(|b| *b == 0)
        {
            return None;
        }
        let (mut workload, version) = own_workload(attrs);
        let kind = SpanKind::try_from(span.kind).ok()?;
        let protocol = protocol(attrs, kind);
        let (method, route, guessed) = method_and_route(attrs, protocol, span.name);
        let route_reported = route.is_some() && guessed.is_none();
        let raw_path = guessed.flatten();
        let status = attrs
            .int(&[Key::HttpResponseStatusCode, Key::HttpStatusCode])
            .or_else(|| attrs.int(&[Key::RpcGrpcStatusCode, Key::GrpcStatusCode]))
            .and_then(|s| u32::try_from(s).ok());
        let error = span.status_error
            || match protocol {
                Protocol::Grpc => {
                    status.is_some_and(|s| s != 0 && s < 100) || status.is_some_and(|s| s >= 500)
                }
                _ => status.is_some_and(|s| s >= 500),
            };
        let mut source_principal = attrs
            .span_str(&[
                Key::SourcePrincipal,
                Key::TlsClientPrincipal,
                Key::DownstreamPeerUriSan,
                Key::DownstreamPeerPrincipal,
                Key::ConnectionUriSanPeerCertificate,
                Key::LinkerdClientId,
            ])
            .map(|p| shared(&p));
        let mut destination_principal = attrs
            .span_str(&[
                Key::DestinationPrincipal,
                Key::TlsServerPrincipal,
                Key::UpstreamPeerUriSan,
                Key::UpstreamPeerPrincipal,
                Key::UpstreamUriSanPeerCertificate,
                Key::LinkerdServerId,
            ])
            .map(|p| shared(&p));
        let cluster_name = attrs.span_str(&[Key::UpstreamCluster]);
        let cluster = cluster_name.as_deref().and_then(parse_upstream_cluster);
        let url = attrs.span_str(&[Key::UrlFull, Key::HttpUrl]);
        let authority = attrs.span_str(&[Key::HttpAuthority, Key::HttpHost]);
        let destination_address = destination_address(
            attrs,
            cluster.as_ref(),
            url.as_deref(),
            authority.as_deref(),
        );
        let peer = (side == Side::Caller)
            .then(|| {
                peer_workload(
                    attrs,
                    protocol,
                    cluster.as_ref(),
                    url.as_deref(),
                    authority.as_deref(),
                )
            })
            .flatten();
        let peer_ip = (side == Side::Caller).then(|| peer_ip(attrs)).flatten();
        let pod_ip = attrs
            .resource_str(&[Key::K8sPodIp])
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
            .map(CompactString::from);
        let mtls = attrs
            .bool(&[Key::ConnectionMtls, Key::IstioMtls, Key::TlsMutual])
            .or_else(|| {
                match &*attrs.span_str(&[
                    Key::ConnectionSecurityPolicyIstio,
                    Key::ConnectionSecurityPolicy,
                ])? {
                    "mutual_tls" => Some(true),
                    "none" | "plaintext" => Some(false),
                    _ => None,
                }
            })
            // A SPIFFE peer identity only exists on a mutually authenticated connection.
            .or_else(|| {
                [&source_principal, &destination_principal]
                    .into_iter()
                    .flatten()
                    .any(|p| p.starts_with("spiffe://"))
                    .then_some(true)
            });
        // A side's own identity is its workload's; only the other side's is kept apart.
        workload.principal = match side {
            Side::Caller => source_principal.take(),
            Side::Callee => destination_principal.take(),
        };
        Some(SpanInfo {
            trace_id: u128::from_be_bytes(span.trace_id.try_into().ok()?),
            span_id: u64::from_be_bytes(span.span_id.try_into().ok()?),
            parent_id: <[u8; 8]>::try_from(span.parent_span_id)
                .ok()
                .map(u64::from_be_bytes)
                .filter(|id| *id != 0),
            side,
            start_ns: i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX),
            duration_ns: span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano),
            workload,
            version,
            protocol,
            method,
            route,
            route_reported,
            raw_path,
            status,
            error,
            mtls,
            source_principal,
            destination_principal,
            peer,
            peer_ip,
            pod_ip,
            destination_address,
            response_flags: attrs
                .span_str(&[Key::ResponseFlags])
                .filter(|f| f != "-")
                .map(CompactString::from),
            request_id: attrs
                .span_str(&[
                    Key::GuidXRequestId,
                    Key::HttpRequestHeaderXRequestId,
                    Key::XRequestId,
                ])
                .map(CompactString::from),
            weight: weight_from_tracestate(span.trace_state),
            request_bytes: attrs.size(&REQUEST_SIZE_KEYS),
            response_bytes: attrs.size(&RESPONSE_SIZE_KEYS),
        })
    }

    /// Lower-case hex, as `{:032x}` writes it (without the formatting machinery: this
    /// runs for every call).
    pub fn trace_hex(&self) -> CompactString {
        lower_hex::<16, 32>(self.trace_id.to_be_bytes())
    }

    /// A span id (this span's or its parent's) as on the emitted call.
    pub fn span_hex(id: u64) -> CompactString {
        lower_hex::<8, 16>(id.to_be_bytes())
    }
}

/// `bytes` as lower-case hex, encoded into a buffer at once (`hex::encode` collects one
/// `char` at a time).
fn lower_hex<const N: usize, const HEX: usize>(bytes: [u8; N]) -> CompactString {
    let mut out = [0u8; HEX];
    hex::encode_to_slice(bytes, &mut out).expect("two hex digits per byte");
    CompactString::from_utf8(out).expect("hex digits are ASCII")
}

fn protocol(attrs: &Attrs, kind: SpanKind) -> Protocol {
    if attrs
        .span_str(&[Key::RpcSystem])
        .is_some_and(|s| s == "grpc")
        || attrs
            .int(&[Key::RpcGrpcStatusCode, Key::GrpcStatusCode])
            .is_some()
    {
        Protocol::Grpc
    } else if attrs.span_has(&[Key::DbSystem, Key::DbSystemName]) {
        Protocol::Db
    } else if attrs.span_has(&[Key::MessagingSystem])
        || matches!(kind, SpanKind::Producer | SpanKind::Consumer)
    {
        Protocol::Messaging
    } else if attrs.span_has(&[
        Key::HttpRequestMethod,
        Key::HttpMethod,
        Key::HttpUrl,
        Key::UrlFull,
        Key::UrlPath,
        Key::HttpTarget,
        Key::HttpPath,
    ]) {
        Protocol::Http
    } else {
        Protocol::Tcp
    }
}

/// Method, route, and `Some` when the route is guessed from a raw path (holding that
/// path, normalised, when it differs from the guess).
fn method_and_route(
    attrs: &Attrs,
    protocol: Protocol,
    span_name: &str,
) -> (
    CompactString,
    Option<CompactString>,
    Option<Option<CompactString>>,
) {
    let http_method = attrs.span_str(&[Key::HttpRequestMethod, Key::HttpMethod]);
    let path = || {
        attrs
            .span_str(&[Key::UrlPath, Key::HttpTarget, Key::HttpPath])
            .or_else(|| {
                attrs
                    .span_str(&[Key::UrlFull, Key::HttpUrl])
                    .map(|u| match u {
                        Cow::Borrowed(u) => Cow::Borrowed(url_path(u)),
                        Cow::Owned(u) => Cow::Owned(url_path(&u).to_string()),
                    })
            })
    };
    match protocol {
        Protocol::Grpc => {
            let route = match (
                attrs.span_str(&[Key::RpcService]),
                attrs.span_str(&[Key::RpcMethod]),
            ) {
                (Some(s), Some(m)) => Some(shared(truncated(&format_compact!("{s}/{m}")))),
                _ => Some(shared(truncated(
                    path()
                        .as_deref()
                        .unwrap_or(span_name)
                        .trim_start_matches('/'),
                ))),
            };
            ("POST".into(), route, None)
        }
        Protocol::Db => {
            let statement = attrs.span_str(&[Key::DbQueryText, Key::DbStatement]);
            let operation = attrs
                .span_str(&[Key::DbOperationName, Key::DbOperation])
                .or_else(|| {
                    statement
                        .as_deref()
                        .and_then(|s| s.split_whitespace().next())
                        .map(|word| Cow::Owned(word.to_string()))
                })
                .map_or_else(|| "QUERY".into(), |o| ascii_upper(&o));
            let target = attrs.span_str(&[
                Key::DbCollectionName,
                Key::DbSqlTable,
                Key::DbMongodbCollection,
                Key::DbNamespace,
                Key::DbName,
            ]);
            (truncate(&operation), target.map(CompactString::from), None)
        }
        Protocol::Messaging => {
            let op = attrs
                .span_str(&[Key::MessagingOperationType, Key::MessagingOperation])
                .map_or_else(|| "publish".into(), CompactString::from);
            (
                op,
                attrs
                    .span_str(&[Key::MessagingDestinationName, Key::MessagingDestination])
                    .map(CompactString::from),
                None,
            )
        }
        Protocol::Http => {
            let method = http_method.map_or_else(|| "GET".into(), |m| ascii_upper(&m));
            if let Some(route) = attrs.span_str(&[Key::HttpRoute]) {
                return (method, Some(normalize_template(&route)), None);
            }
            match path() {
                Some(p) => {
                    let (template, raw) = template_and_raw(&p);
                    (method, Some(template), Some(raw))
                }
                None => (method, None, None),
            }
        }
        Protocol::Tcp => ("CONNECT".into(), None, None),
    }
}

fn destination_address(
    attrs: &Attrs,
    cluster: Option<&super::workload::IstioCluster<'_>>,
    url: Option<&str>,
    authority: Option<&str>,
) -> Option<CompactString> {
    let port = attrs.int(&[Key::ServerPort, Key::NetPeerPort, Key::NetHostPort]);
    if let Some(host) = attrs.span_str(&[Key::ServerAddress, Key::NetPeerName, Key::NetPeerIp]) {
        return Some(match port {
            Some(p) => host_port(&host, p),
            None => host.into(),
        });
    }
    if let Some(a) = url.and_then(url_authority).or(authority) {
        return Some(shared(truncated(a)));
    }
    let c = cluster.filter(|c| !c.inbound)?;
    Some(host_port(c.host?, c.port?))
}

/// `host:port`, without the formatting machinery (once per span).
fn host_port(host: &str, port: impl ToCompactString) -> CompactString {
    let port = port.to_compact_string();
    let mut out = CompactString::with_capacity(host.len() + 1 + port.len());
    out.push_str(host);
    out.push(':');
    out.push_str(&port);
    out
}

fn peer_workload(
    attrs: &Attrs,
    protocol: Protocol,
    cluster: Option<&super::workload::IstioCluster<'_>>,
    url: Option<&str>,
    authority: Option<&str>,
) -> Option<Workload> {
    let from_host = |host: &str| {
        let (service, namespace) = split_k8s_host(host);
        Workload {
            service,
            namespace,
            principal: None,
        }
    };
    if let Some(p) = attrs.span_str(&[Key::PeerService]) {
        return Some(Workload::new(p));
    }
    if let Some(c) = cluster.filter(|c| !c.inbound)
        && let Some(service) = &c.service
    {
        return Some(Workload {
            service: service.clone(),
            namespace: c.namespace.clone(),
            principal: None,
        });
    }
    if let Some(host) = attrs.span_str(&[Key::ServerAddress, Key::NetPeerName]) {
        return Some(from_host(&host));
    }
    if protocol == Protocol::Db
        && let Some(system) = attrs.span_str(&[Key::DbSystem, Key::DbSystemName])
    {
        return Some(match attrs.span_str(&[Key::DbNamespace, Key::DbName]) {
            Some(db) => Workload::new(format_compact!("{system}/{db}")),
            None => Workload::new(system),
        });
    }
    if protocol == Protocol::Messaging
        && let Some(system) = attrs.span_str(&[Key::MessagingSystem])
    {
        return Some(Workload::new(system));
    }
    let host = url.and_then(url_authority).or(authority)?;
    Some(from_host(
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    ))
}

/// The caller's peer address when it is an IP literal (`network.peer.address`,
/// `net.peer.ip`, or `server.address` holding an IP).
fn peer_ip(attrs: &Attrs) -> Option<CompactString> {
    [Key::NetworkPeerAddress, Key::NetPeerIp, Key::ServerAddress]
        .into_iter()
        .filter_map(|k| attrs.span_str(&[k]))
        .find(|a| a.parse::<std::net::IpAddr>().is_ok())
        .map(CompactString::from)
}

/// The principal claims a service account: used when a server side is missing but the
/// client knows who it talked to.
pub fn principal_workload(principal: &str) -> Option<Workload> {
    let (sa, ns) = spiffe_service_account(principal)?;
    Some(Workload {
        service: sa,
        namespace: Some(ns),
        principal: Some(shared(principal)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_as_zero_padded_lower_case_hex() {
        for (trace, span) in [
            (0u128, 0u64),
            (1, 0xab),
            (u128::MAX, u64::MAX),
            (0xdead << 64, 7),
        ] {
            let info = SpanInfo {
                trace_id: trace,
                span_id: span,
                ..test_info()
            };
            assert_eq!(info.trace_hex(), format!("{trace:032x}"));
            assert_eq!(SpanInfo::span_hex(span), format!("{span:016x}"));
        }
    }

    fn test_info() -> SpanInfo {
        SpanInfo {
            trace_id: 0,
            span_id: 0,
            parent_id: None,
            side: Side::Caller,
            start_ns: 0,
            duration_ns: 0,
            workload: Workload::new("a"),
            version: None,
            protocol: Protocol::Http,
            method: CompactString::default(),
            route: None,
            route_reported: false,
            raw_path: None,
            status: None,
            error: false,
            mtls: None,
            source_principal: None,
            destination_principal: None,
            peer: None,
            peer_ip: None,
            pod_ip: None,
            destination_address: None,
            response_flags: None,
            request_id: None,
            weight: 1.0,
            request_bytes: None,
            response_bytes: None,
        }
    }
}
