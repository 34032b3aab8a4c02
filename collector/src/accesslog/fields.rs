//! The access-log fields eastwest reads, whatever the encoding, and how they become a
//! call.
//!
//! Who is who: an outbound line (`upstream_cluster` `outbound|…`, or no cluster at all,
//! as for `NR` no-route lines) is written by the caller's sidecar: source = the
//! reporting workload, destination from the cluster (else the `:authority` host). An
//! inbound line (`inbound|…`) is written by the callee's sidecar: destination = the
//! reporting workload, source = the workload named by the caller's SPIFFE id
//! (`downstream_peer_uri_san`: service = service account, namespace = its namespace) or
//! `unknown` when the line carries no peer identity (the remote address is then kept
//! nowhere: a bare IP is not an identity). When the reporter itself is unknown (a file
//! ingested without `--service`), an inbound line names its destination from the mTLS
//! SNI (`outbound_.PORT_.SUBSET_.HOST`) or the `:authority` host.

use eastwest_model::{Call, CompactString, Protocol, Workload, format_compact};

use crate::CollectorError;
use crate::dedup::CallOrigin;
use crate::spans::{parse_upstream_cluster, spiffe_service_account, split_k8s_host, template_path};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct AccessLogFields {
    pub start_time: Option<CompactString>,
    pub method: Option<CompactString>,
    pub path: Option<CompactString>,
    pub protocol: Option<CompactString>,
    pub response_code: Option<u32>,
    pub response_flags: Option<CompactString>,
    pub response_code_details: Option<CompactString>,
    pub duration_ms: Option<u64>,
    pub request_id: Option<CompactString>,
    pub authority: Option<CompactString>,
    pub upstream_host: Option<CompactString>,
    pub upstream_cluster: Option<CompactString>,
    pub downstream_remote_address: Option<CompactString>,
    pub requested_server_name: Option<CompactString>,
    pub downstream_peer_uri_san: Option<CompactString>,
    pub upstream_peer_uri_san: Option<CompactString>,
    pub trace_id: Option<CompactString>,
    pub span_id: Option<CompactString>,
    /// `%BYTES_RECEIVED%`: body bytes received from downstream, i.e. the request body
    /// (on both the caller's and the callee's sidecar; bytes of the connection for TCP).
    pub bytes_received: Option<u64>,
    /// `%BYTES_SENT%`: body bytes sent downstream, i.e. the response body.
    pub bytes_sent: Option<u64>,
}

/// `-` and empty mean absent in Envoy's formats; values are capped like span attributes.
pub fn present(s: &str) -> Option<CompactString> {
    let s = s.trim();
    (!s.is_empty() && s != "-").then(|| crate::spans::truncate_field(s))
}

fn workload_from_spiffe(san: &str) -> Option<Workload> {
    let (sa, ns) = spiffe_service_account(san)?;
    Some(Workload {
        service: crate::spans::truncate_field(&sa),
        namespace: Some(crate::spans::truncate_field(&ns)),
        principal: Some(san.into()),
    })
}

/// Istio clusters in either spelling: `outbound|9080|v1|reviews.ns.svc.cluster.local`
/// (`%UPSTREAM_CLUSTER_RAW%`) or the stats name `outbound_.9080_.v1_.reviews.ns.svc…`
/// (`%UPSTREAM_CLUSTER%` on recent Istio, and the SNI of mTLS connections).
pub fn parse_cluster(cluster: &str) -> Option<LogCluster> {
    let raw_spelling;
    let parsed = if cluster.contains('|') {
        parse_upstream_cluster(cluster)?
    } else {
        let (direction, rest) = cluster.split_once("_.")?;
        let (port, rest) = rest.split_once("_.").unwrap_or((rest, ""));
        let (subset, host) = rest.split_once("_.").unwrap_or(("", rest));
        raw_spelling = format!("{direction}|{port}|{subset}|{host}");
        parse_upstream_cluster(&raw_spelling)?
    };
    Some(LogCluster {
        inbound: parsed.inbound,
        service: parsed.service,
        namespace: parsed.namespace,
    })
}

/// What an Istio cluster name says about the call.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCluster {
    pub inbound: bool,
    pub service: Option<CompactString>,
    pub namespace: Option<CompactString>,
}

fn host_workload(host: &str) -> Workload {
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    let (service, namespace) = split_k8s_host(host);
    Workload {
        service,
        namespace,
        principal: None,
    }
}

fn event_time(start_time: Option<&str>, fallback_time_ns: i64) -> Result<i64, CollectorError> {
    let parsed = start_time.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| CollectorError::Malformed(format!("start time {t:?}: {e}")))
            .and_then(|d| {
                d.timestamp_nanos_opt().ok_or_else(|| {
                    CollectorError::Malformed(format!("start time {t:?} out of range"))
                })
            })
    });
    match parsed {
        Some(Ok(ns)) => Ok(ns),
        _ if fallback_time_ns > 0 => Ok(fallback_time_ns),
        Some(Err(e)) => Err(e),
        None => Err(CollectorError::Malformed(
            "access log line has no start time".into(),
        )),
    }
}

impl AccessLogFields {
    /// The call this line describes, seen from `reporter` (the workload whose proxy wrote
    /// it; `unknown` when nobody said). `fallback_time_ns` (the log record's timestamp)
    /// is used when the line has no usable start time.
    pub fn into_call(
        self,
        reporter: &Workload,
        fallback_time_ns: i64,
    ) -> Result<(Call, CallOrigin), CollectorError> {
        let event_time_ns = event_time(self.start_time.as_deref(), fallback_time_ns)?;
        let cluster = self.upstream_cluster.as_deref().and_then(parse_cluster);
        let sni_cluster = self
            .requested_server_name
            .as_deref()
            .and_then(parse_cluster);
        let inbound = cluster.as_ref().is_some_and(|c| c.inbound);
        let sni_is_istio_mtls = self
            .requested_server_name
            .as_deref()
            .is_some_and(|s| s.starts_with("outbound_."));
        let mtls = if inbound {
            (self.downstream_peer_uri_san.is_some() || sni_is_istio_mtls).then_some(true)
        } else {
            (self.upstream_peer_uri_san.is_some() || sni_is_istio_mtls).then_some(true)
        };
        let reporter_known = reporter.service != "unknown";
        let (source, destination, origin) = if inbound {
            let source = self
                .downstream_peer_uri_san
                .as_deref()
                .and_then(workload_from_spiffe)
                .unwrap_or_else(|| Workload::new("unknown"));
            let mut destination = if reporter_known {
                reporter.clone()
            } else {
                match sni_cluster.as_ref().and_then(|c| c.service.clone()) {
                    Some(service) => Workload {
                        service,
                        namespace: sni_cluster.and_then(|c| c.namespace),
                        principal: None,
                    },
                    None => self
                        .authority
                        .as_deref()
                        .map(host_workload)
                        .unwrap_or_else(|| Workload::new("unknown")),
                }
            };
            destination.principal = destination.principal.or(self
                .upstream_peer_uri_san
                .as_deref()
                .map(CompactString::from));
            (source, destination, CallOrigin::InboundLog)
        } else {
            let mut source = reporter.clone();
            source.principal = source.principal.or(self
                .downstream_peer_uri_san
                .as_deref()
                .map(CompactString::from));
            let mut destination = match cluster.and_then(|c| c.service.map(|s| (s, c.namespace))) {
                Some((service, namespace)) => Workload {
                    service,
                    namespace,
                    principal: None,
                },
                None => host_workload(
                    self.authority
                        .as_deref()
                        .or(self.upstream_host.as_deref())
                        .unwrap_or("unknown"),
                ),
            };
            destination.principal = self
                .upstream_peer_uri_san
                .as_deref()
                .map(CompactString::from);
            (source, destination, CallOrigin::OutboundLog)
        };
        let call = self.call_between(source, destination, event_time_ns, mtls);
        Ok((call, origin))
    }

    fn call_between(
        self,
        source: Workload,
        destination: Workload,
        event_time_ns: i64,
        mtls: Option<bool>,
    ) -> Call {
        let tcp = self.method.is_none() && self.path.is_none();
        let grpc = !tcp
            && self.protocol.as_deref() == Some("HTTP/2")
            && self.path.as_deref().is_some_and(is_grpc_path);
        let protocol = if tcp {
            Protocol::Tcp
        } else if grpc {
            Protocol::Grpc
        } else {
            Protocol::Http
        };
        let route = match (&self.path, protocol) {
            (_, Protocol::Tcp) => "*".into(),
            (Some(p), Protocol::Grpc) => p.trim_start_matches('/').into(),
            (Some(p), _) => template_path(p),
            (None, _) => "/".into(),
        };
        let method = match protocol {
            Protocol::Tcp => "CONNECT".into(),
            _ => crate::spans::ascii_upper(self.method.as_deref().unwrap_or("GET")),
        };
        let status = self.response_code.filter(|c| *c > 0);
        let rbac_denied = self
            .response_code_details
            .as_deref()
            .is_some_and(|d| d.starts_with("rbac_access_denied"));
        let response_flags = match (self.response_flags, rbac_denied) {
            (Some(f), true) if !f.split(',').any(|x| x == "RBAC") => {
                Some(format_compact!("{f},RBAC"))
            }
            (None, true) => Some("RBAC".into()),
            (flags, _) => flags,
        };
        // A proxy-generated failure without a status (`UF`, `URX`, `UH` on TCP) is an error too.
        let error = status.map_or(response_flags.is_some(), |s| s >= 500);
        Call {
            event_time_ns,
            source,
            destination,
            protocol,
            method,
            route,
            status,
            error,
            duration_ns: self.duration_ms.unwrap_or(0).saturating_mul(1_000_000),
            mtls,
            trace_id: self.trace_id.map(ascii_lower).unwrap_or_default(),
            span_id: self.span_id.map(ascii_lower).unwrap_or_default(),
            entry: None,
            response_flags,
            destination_address: self.upstream_host.or(self.authority),
            source_version: None,
            request_id: self.request_id,
            weight: 1.0,
            claimed_principal: None,
            request_bytes: self.bytes_received,
            response_bytes: self.bytes_sent,
        }
    }
}

/// Ids as traces spell them, lower-case hex; in place, as the field is owned.
fn ascii_lower(mut id: CompactString) -> CompactString {
    id.make_ascii_lowercase();
    id
}

/// `/package.Service/Method`: two segments, the first dotted.
fn is_grpc_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    match rest.split_once('/') {
        Some((service, method)) => {
            service.contains('.') && !method.is_empty() && !method.contains('/')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_cluster_spellings_parse_alike() {
        let raw = parse_cluster("outbound|9080|v1|reviews.bookinfo.svc.cluster.local").unwrap();
        let stats =
            parse_cluster("outbound_.9080_.v1_.reviews.bookinfo.svc.cluster.local").unwrap();
        assert_eq!(raw, stats);
        assert_eq!(
            (raw.service.as_deref(), raw.namespace.as_deref()),
            (Some("reviews"), Some("bookinfo"))
        );
        let sni = parse_cluster("outbound_.8000_._.httpbin.foo.svc.cluster.local").unwrap();
        assert_eq!(sni.service.as_deref(), Some("httpbin"));
        assert!(parse_cluster("inbound|8000||").unwrap().inbound);
        assert!(parse_cluster("PassthroughCluster").is_none());
    }

    #[test]
    fn tcp_lines_are_tcp_calls_and_flags_mark_errors() {
        let fields = AccessLogFields {
            start_time: Some("2024-05-01T10:00:00Z".into()),
            response_flags: Some("UF".into()),
            upstream_cluster: Some("outbound|5432||db.data.svc.cluster.local".into()),
            ..Default::default()
        };
        let (call, origin) = fields
            .into_call(&Workload::new("api").in_namespace("shop"), 0)
            .unwrap();
        assert_eq!(origin, CallOrigin::OutboundLog);
        assert_eq!(
            (call.protocol, call.method.as_str(), call.route.as_str()),
            (Protocol::Tcp, "CONNECT", "*")
        );
        assert_eq!(call.destination.key(), "db.data");
        assert!(call.error);
    }

    #[test]
    fn rbac_denials_are_flagged_and_grpc_paths_recognised() {
        let fields = AccessLogFields {
            start_time: Some("2024-05-01T10:00:00Z".into()),
            method: Some("POST".into()),
            path: Some("/hipstershop.CartService/GetCart".into()),
            protocol: Some("HTTP/2".into()),
            response_code: Some(403),
            response_code_details: Some(
                "rbac_access_denied_matched_policy[ns[shop]-policy[deny-all]-rule[0]]".into(),
            ),
            upstream_cluster: Some("inbound|7070||".into()),
            ..Default::default()
        };
        let (call, _) = fields
            .into_call(&Workload::new("cart").in_namespace("shop"), 0)
            .unwrap();
        assert_eq!(call.protocol, Protocol::Grpc);
        assert_eq!(call.route, "hipstershop.CartService/GetCart");
        assert_eq!(call.response_flags.as_deref(), Some("RBAC"));
        assert_eq!(
            call.source,
            Workload::new("unknown"),
            "no peer identity on the line"
        );
        assert_eq!(call.mtls, None);
        assert!(!call.error);
    }

    #[test]
    fn unknown_reporter_of_an_inbound_line_is_named_by_the_sni() {
        let fields = AccessLogFields {
            start_time: Some("2024-05-01T10:00:00Z".into()),
            method: Some("GET".into()),
            path: Some("/".into()),
            authority: Some("nginx".into()),
            upstream_cluster: Some("inbound|80||".into()),
            requested_server_name: Some("outbound_.80_._.nginx.default.svc.cluster.local".into()),
            ..Default::default()
        };
        let (call, origin) = fields
            .clone()
            .into_call(&Workload::new("unknown"), 0)
            .unwrap();
        assert_eq!(origin, CallOrigin::InboundLog);
        assert_eq!(call.destination.key(), "nginx.default");
        assert_eq!(call.mtls, Some(true));
        let (call, _) = fields
            .into_call(&Workload::new("web").in_namespace("prod"), 0)
            .unwrap();
        assert_eq!(
            call.destination.key(),
            "web.prod",
            "a known reporter wins over the SNI"
        );
    }

    #[test]
    fn bad_start_time_falls_back_to_the_record_time_or_fails() {
        let fields = AccessLogFields {
            start_time: Some("yesterday".into()),
            method: Some("GET".into()),
            ..Default::default()
        };
        assert!(fields.clone().into_call(&Workload::new("a"), 0).is_err());
        assert_eq!(
            fields
                .into_call(&Workload::new("a"), 42)
                .unwrap()
                .0
                .event_time_ns,
            42
        );
    }
}
