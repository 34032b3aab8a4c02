//! The access-log fields eastwest reads, whatever the encoding, and how they become a
//! call. An outbound line (`upstream_cluster` `outbound|…`) is written by the caller's
//! sidecar: source = the reporting workload, destination from the cluster. An inbound
//! line is written by the callee's sidecar: destination = the reporting workload, source
//! from the peer's SPIFFE id (`downstream_peer_uri_san`) or `unknown`.

use eastwest_model::{Call, Protocol, Workload};

use crate::CollectorError;
use crate::dedup::CallOrigin;
use crate::spans::{parse_upstream_cluster, spiffe_service_account, split_k8s_host, template_path};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct AccessLogFields {
    pub start_time: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub protocol: Option<String>,
    pub response_code: Option<u32>,
    pub response_flags: Option<String>,
    pub response_code_details: Option<String>,
    pub duration_ms: Option<u64>,
    pub request_id: Option<String>,
    pub authority: Option<String>,
    pub upstream_host: Option<String>,
    pub upstream_cluster: Option<String>,
    pub downstream_remote_address: Option<String>,
    pub requested_server_name: Option<String>,
    pub downstream_peer_uri_san: Option<String>,
    pub upstream_peer_uri_san: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

/// `-` and empty mean absent in Envoy's formats.
pub fn present(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s != "-").then(|| crate::spans::truncate_field(s))
}

fn workload_from_spiffe(san: &str) -> Option<Workload> {
    let (sa, ns) = spiffe_service_account(san)?;
    Some(Workload { service: sa, namespace: Some(ns), principal: Some(san.to_string()) })
}

impl AccessLogFields {
    /// The call this line describes, seen from `reporter` (the workload whose proxy wrote it).
    pub fn into_call(self, reporter: &Workload, fallback_time_ns: i64) -> Result<(Call, CallOrigin), CollectorError> {
        let event_time_ns = match &self.start_time {
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| CollectorError::Malformed(format!("start time {t:?}: {e}")))?
                .timestamp_nanos_opt()
                .unwrap_or(fallback_time_ns),
            None if fallback_time_ns > 0 => fallback_time_ns,
            None => return Err(CollectorError::Malformed("access log line has no start time".into())),
        };
        let cluster = self.upstream_cluster.as_deref().and_then(parse_upstream_cluster);
        let inbound = cluster.as_ref().is_some_and(|c| c.inbound);
        let mtls = match (&self.downstream_peer_uri_san, &self.upstream_peer_uri_san, &self.requested_server_name) {
            (Some(_), _, _) if inbound => Some(true),
            (_, Some(_), _) if !inbound => Some(true),
            (_, _, Some(sni)) if sni.starts_with("outbound_.") => Some(true),
            _ => None,
        };
        let (source, destination, origin) = if inbound {
            let source = self
                .downstream_peer_uri_san
                .as_deref()
                .and_then(workload_from_spiffe)
                .unwrap_or_else(|| Workload::new("unknown"));
            let mut destination = reporter.clone();
            destination.principal = destination.principal.or(self.upstream_peer_uri_san.clone());
            (source, destination, CallOrigin::InboundLog)
        } else {
            let mut source = reporter.clone();
            source.principal = source.principal.or(self.downstream_peer_uri_san.clone());
            let destination = match cluster.as_ref().and_then(|c| c.service.clone().map(|s| (s, c.namespace.clone()))) {
                Some((service, namespace)) => Workload { service, namespace, principal: self.upstream_peer_uri_san.clone() },
                None => {
                    let host = self.authority.as_deref().or(self.upstream_host.as_deref()).unwrap_or("unknown");
                    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
                    let (service, namespace) = split_k8s_host(host);
                    Workload { service, namespace, principal: self.upstream_peer_uri_san.clone() }
                }
            };
            (source, destination, CallOrigin::OutboundLog)
        };
        let grpc = self.path.as_deref().is_some_and(|p| p.starts_with('/') && p[1..].contains('.') && p.matches('/').count() == 2)
            && self.protocol.as_deref() == Some("HTTP/2");
        let status = self.response_code.filter(|c| *c > 0);
        let flags = self.response_flags.clone();
        let rbac_denied = self.response_code_details.as_deref().is_some_and(|d| d.starts_with("rbac_access_denied"));
        Ok((
            Call {
                event_time_ns,
                source,
                destination,
                protocol: if grpc { Protocol::Grpc } else { Protocol::Http },
                method: self.method.clone().unwrap_or_else(|| "GET".into()).to_ascii_uppercase(),
                route: match (&self.path, grpc) {
                    (Some(p), true) => p.trim_start_matches('/').to_string(),
                    (Some(p), false) => template_path(p),
                    (None, _) => "/".into(),
                },
                status,
                error: status.is_some_and(|s| s >= 500),
                duration_ns: self.duration_ms.unwrap_or(0) * 1_000_000,
                mtls,
                trace_id: self.trace_id.clone().unwrap_or_default(),
                span_id: self.span_id.clone().unwrap_or_default(),
                entry: None,
                response_flags: match (flags, rbac_denied) {
                    (Some(f), _) => Some(f),
                    (None, true) => Some("RBAC".into()),
                    (None, false) => None,
                },
                destination_address: self.upstream_host.clone().or(self.authority.clone()),
                source_version: None,
                request_id: self.request_id.clone(),
                weight: 1.0,
            },
            origin,
        ))
    }
}
