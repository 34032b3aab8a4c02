//! Envoy access logs for every hop, as Istio sidecars write them: the caller's sidecar
//! logs the outbound request, the callee's sidecar the inbound one (databases and
//! uninstrumented destinations: outbound only). Three encodings (`--access-logs`):
//!
//! * `istio-text` — Istio's default TEXT format with the common
//!   `%DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_URI_SAN%` extension appended, one file
//!   per workload: `access-logs/SERVICE.NAMESPACE.log` (what `kubectl logs -c istio-proxy`
//!   shows; feed with `eastwest ingest-logs --service SERVICE --namespace NAMESPACE`).
//! * `istio-json` — the same fields in Istio's JSON encoding, same file layout.
//! * `otlp-logs` — `logs.pb`/`logs.json`: `ExportLogsServiceRequest`s as Envoy's
//!   OpenTelemetry access logger (Istio `envoyOtelAls`) sends them: the text line as
//!   body, trace context on the record, the reporting workload in the resource.
//!
//! Access logs are never sampled (Envoy logs every request), so with `--sample-ratio`
//! they also cover the traces that were dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::FileFormat;
use super::spans::pod_ip;
use crate::error::DatasetError;
use crate::otlp::kv;

/// `--access-logs` encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLogFormat {
    IstioText,
    IstioJson,
    OtlpLogs,
}

impl AccessLogFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "istio-text" => Some(Self::IstioText),
            "istio-json" => Some(Self::IstioJson),
            "otlp-logs" => Some(Self::OtlpLogs),
            _ => None,
        }
    }
}

/// Log records per `ExportLogsServiceRequest`.
const RECORDS_PER_EXPORT: usize = 500;

/// What the span emitter knows about one hop.
pub(crate) struct HopLog<'a> {
    pub t: i64,
    pub dur: i64,
    pub method: &'a str,
    pub path: &'a str,
    pub grpc: bool,
    pub db: bool,
    /// The destination is a mesh service (else: PassthroughCluster to a raw address).
    pub mesh: bool,
    pub status: u32,
    pub request_id: &'a str,
    pub caller: &'a str,
    pub caller_pod: &'a str,
    pub callee: &'a str,
    /// `None` when the callee emitted no server side (no inbound line).
    pub callee_pod: Option<&'a str>,
    pub port: u16,
    pub ns: &'a str,
    pub mtls: bool,
    pub src_principal: &'a str,
    pub dst_principal: &'a str,
    pub trace: &'a [u8],
    pub client_span: &'a [u8],
    pub server_span: Option<&'a [u8]>,
    pub version: &'a str,
    /// Body bytes, as the spans report them (`%BYTES_RECEIVED%`, `%BYTES_SENT%`).
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// The fields of one line, in Istio's default format order.
#[derive(Debug, Clone)]
struct Line {
    start_time: String,
    method: String,
    path: String,
    protocol: String,
    response_code: u32,
    response_flags: &'static str,
    response_code_details: &'static str,
    bytes_received: u64,
    bytes_sent: u64,
    duration: u64,
    upstream_service_time: Option<u64>,
    user_agent: &'static str,
    request_id: String,
    authority: String,
    upstream_host: String,
    upstream_cluster: String,
    upstream_local_address: String,
    downstream_local_address: String,
    downstream_remote_address: String,
    requested_server_name: Option<String>,
    downstream_peer_uri_san: Option<String>,
    upstream_peer_uri_san: Option<String>,
}

fn dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |x| x.to_string())
}

impl Line {
    fn text(&self) -> String {
        format!(
            "[{}] \"{} {} {}\" {} {} {} - \"-\" {} {} {} {} \"-\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} default {} {}",
            self.start_time,
            self.method,
            self.path,
            self.protocol,
            self.response_code,
            self.response_flags,
            self.response_code_details,
            self.bytes_received,
            self.bytes_sent,
            self.duration,
            dash(&self.upstream_service_time),
            self.user_agent,
            self.request_id,
            self.authority,
            self.upstream_host,
            self.upstream_cluster,
            self.upstream_local_address,
            self.downstream_local_address,
            self.downstream_remote_address,
            dash(&self.requested_server_name),
            dash(&self.downstream_peer_uri_san),
            dash(&self.upstream_peer_uri_san),
        )
    }

    /// Istio's JSON encoding (`accessLogEncoding: JSON`), with the two peer SANs added.
    fn json(&self) -> String {
        let opt = |v: &Option<String>| v.clone().map_or(serde_json::Value::Null, Into::into);
        json!({
            "start_time": self.start_time,
            "method": self.method,
            "path": self.path,
            "protocol": self.protocol,
            "response_code": self.response_code,
            "response_flags": self.response_flags,
            "response_code_details": self.response_code_details,
            "connection_termination_details": null,
            "upstream_transport_failure_reason": null,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "duration": self.duration,
            "upstream_service_time": self.upstream_service_time.map(|v| v.to_string()),
            "x_forwarded_for": null,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "authority": self.authority,
            "upstream_host": self.upstream_host,
            "upstream_cluster": self.upstream_cluster,
            "upstream_local_address": self.upstream_local_address,
            "downstream_local_address": self.downstream_local_address,
            "downstream_remote_address": self.downstream_remote_address,
            "requested_server_name": opt(&self.requested_server_name),
            "route_name": "default",
            "downstream_peer_uri_san": opt(&self.downstream_peer_uri_san),
            "upstream_peer_uri_san": opt(&self.upstream_peer_uri_san),
        })
        .to_string()
    }
}

/// A TCP-proxy (database) line has no HTTP request.
fn tcp(line: &mut Line) {
    line.method = "-".into();
    line.path = "-".into();
    line.protocol = "-".into();
    line.response_code = 0;
    line.response_code_details = "-";
    line.upstream_service_time = None;
    line.user_agent = "-";
    line.request_id = "-".into();
    line.authority = "-".into();
}

struct Record {
    /// Reporting workload: (service, pod).
    service: String,
    pod: String,
    version: String,
    t: i64,
    trace: Vec<u8>,
    span: Vec<u8>,
    line: Line,
}

/// Collects the access-log records of a scenario, then writes them.
pub(crate) struct LogSink {
    format: AccessLogFormat,
    records: Vec<Record>,
    pub lines: u64,
}

fn small_hash(s: &str) -> u32 {
    s.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

impl LogSink {
    pub fn new(format: AccessLogFormat) -> Self {
        Self {
            format,
            records: Vec::new(),
            lines: 0,
        }
    }

    pub fn hop(&mut self, h: HopLog) {
        let start_time = chrono::DateTime::from_timestamp_nanos(h.t)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let caller_ip = pod_ip(h.caller_pod);
        let callee_ip = h.callee_pod.map(pod_ip).unwrap_or_else(|| {
            if h.mesh {
                let x = small_hash(h.callee);
                format!("10.1.{}.{}", x % 200, 2 + (x >> 8) % 250)
            } else {
                h.callee.to_string()
            }
        });
        let x = small_hash(h.request_id) ^ small_hash(h.callee);
        let ephemeral = 32_768 + (x % 28_000) as u16;
        let host = format!("{}.{}.svc.cluster.local", h.callee, h.ns);
        let cluster_ip = {
            let y = small_hash(&host);
            format!("10.96.{}.{}", y % 250, 1 + (y >> 8) % 250)
        };
        let (bytes_received, bytes_sent) = (h.request_bytes, h.response_bytes);
        let duration = (h.dur / 1_000_000) as u64;
        let outbound = Line {
            start_time: start_time.clone(),
            method: h.method.to_string(),
            path: h.path.to_string(),
            protocol: if h.grpc { "HTTP/2" } else { "HTTP/1.1" }.into(),
            response_code: h.status,
            response_flags: "-",
            response_code_details: "via_upstream",
            bytes_received,
            bytes_sent,
            duration,
            upstream_service_time: Some(duration.saturating_sub(1)),
            user_agent: if h.grpc {
                "grpc-go/1.58.3"
            } else {
                "okhttp/4.12.0"
            },
            request_id: h.request_id.to_string(),
            authority: if h.mesh {
                format!("{}:{}", h.callee, h.port)
            } else {
                h.callee.to_string()
            },
            upstream_host: format!("{callee_ip}:{}", h.port),
            upstream_cluster: if h.mesh {
                format!("outbound|{}||{host}", h.port)
            } else {
                "PassthroughCluster".into()
            },
            upstream_local_address: format!("{caller_ip}:{ephemeral}"),
            downstream_local_address: if h.mesh {
                format!("{cluster_ip}:{}", h.port)
            } else {
                format!("{}:{}", h.callee, h.port)
            },
            downstream_remote_address: format!("{caller_ip}:{}", ephemeral + 1),
            requested_server_name: None,
            downstream_peer_uri_san: None,
            upstream_peer_uri_san: (h.mtls && h.mesh).then(|| h.dst_principal.to_string()),
        };
        let mut outbound = outbound;
        if h.db {
            tcp(&mut outbound);
        }
        if let (Some(callee_pod), Some(server_span)) = (h.callee_pod, h.server_span) {
            let inbound = Line {
                start_time: chrono::DateTime::from_timestamp_nanos(h.t + 200_000)
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
                duration: duration.saturating_sub(1),
                upstream_service_time: Some(duration.saturating_sub(2)),
                upstream_host: format!("{callee_ip}:{}", h.port),
                upstream_cluster: format!("inbound|{}||", h.port),
                upstream_local_address: format!("127.0.0.6:{}", ephemeral + 2),
                downstream_local_address: format!("{callee_ip}:{}", h.port),
                downstream_remote_address: format!("{caller_ip}:{}", ephemeral + 3),
                requested_server_name: h.mtls.then(|| format!("outbound_.{}_._.{host}", h.port)),
                downstream_peer_uri_san: h.mtls.then(|| h.src_principal.to_string()),
                upstream_peer_uri_san: None,
                ..outbound.clone()
            };
            self.push(
                h.callee,
                callee_pod,
                &h,
                server_span,
                h.t + 200_000,
                inbound,
            );
        }
        self.push(h.caller, h.caller_pod, &h, h.client_span, h.t, outbound);
    }

    fn push(&mut self, service: &str, pod: &str, h: &HopLog, span: &[u8], t: i64, line: Line) {
        self.lines += 1;
        self.records.push(Record {
            service: service.to_string(),
            pod: pod.to_string(),
            version: h.version.to_string(),
            t,
            trace: h.trace.to_vec(),
            span: span.to_vec(),
            line,
        });
    }

    /// Writes `access-logs/*.log` (text, JSON) or `logs.pb`/`logs.json` (OTLP) into `out`.
    pub fn write(self, out: &Path, ns: &str, format: FileFormat) -> Result<(), DatasetError> {
        match self.format {
            AccessLogFormat::IstioText | AccessLogFormat::IstioJson => {
                let dir = out.join("access-logs");
                std::fs::create_dir_all(&dir).map_err(|e| DatasetError::io(&dir, e))?;
                let mut files: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
                for r in &self.records {
                    files.entry(r.service.as_str()).or_default().push(r);
                }
                for (service, mut records) in files {
                    // A sidecar writes in time order.
                    records.sort_by_key(|r| r.t);
                    let mut buf = Vec::new();
                    for r in records {
                        let line = match self.format {
                            AccessLogFormat::IstioText => r.line.text(),
                            _ => r.line.json(),
                        };
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                    }
                    let p = dir.join(format!("{service}.{ns}.log"));
                    std::fs::write(&p, buf).map_err(|e| DatasetError::io(&p, e))?;
                }
                Ok(())
            }
            AccessLogFormat::OtlpLogs => {
                let reqs = self.otlp_requests(ns);
                let (path, bytes) = match format {
                    FileFormat::Pb => {
                        let mut buf = Vec::new();
                        for r in &reqs {
                            r.encode_length_delimited(&mut buf).expect("vec grows");
                        }
                        (out.join("logs.pb"), buf)
                    }
                    FileFormat::Json => {
                        let mut buf = Vec::new();
                        for r in &reqs {
                            serde_json::to_writer(&mut buf, r).expect("logs serialise");
                            buf.write_all(b"\n").expect("vec grows");
                        }
                        (out.join("logs.json"), buf)
                    }
                };
                std::fs::write(&path, bytes).map_err(|e| DatasetError::io(&path, e))
            }
        }
    }

    fn otlp_requests(&self, ns: &str) -> Vec<ExportLogsServiceRequest> {
        let mut out = Vec::new();
        for chunk in self.records.chunks(RECORDS_PER_EXPORT) {
            let mut resource_logs: Vec<ResourceLogs> = Vec::new();
            for r in chunk {
                let record = LogRecord {
                    time_unix_nano: r.t as u64,
                    observed_time_unix_nano: r.t as u64 + r.line.duration * 1_000_000,
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(r.line.text())),
                    }),
                    trace_id: r.trace.clone(),
                    span_id: r.span.clone(),
                    ..Default::default()
                };
                let resource = otlp_resource(&r.service, &r.pod, &r.version, ns);
                match resource_logs
                    .iter_mut()
                    .find(|rl| rl.resource.as_ref().map(|x| &x.attributes) == Some(&resource))
                {
                    Some(rl) => rl.scope_logs[0].log_records.push(record),
                    None => resource_logs.push(ResourceLogs {
                        resource: Some(Resource {
                            attributes: resource,
                            ..Default::default()
                        }),
                        scope_logs: vec![ScopeLogs {
                            log_records: vec![record],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }
            }
            out.push(ExportLogsServiceRequest { resource_logs });
        }
        out
    }
}

/// The resource Envoy's OpenTelemetry access logger reports under Istio: its own
/// `log_name`/`cluster_name`/`node_name`, plus the workload attributes Istio adds.
fn otlp_resource(service: &str, pod: &str, version: &str, ns: &str) -> Vec<KeyValue> {
    vec![
        kv("log_name", "otel_envoy_accesslog"),
        kv("zone_name", ""),
        kv("cluster_name", &format!("{service}.{ns}")),
        kv(
            "node_name",
            &format!("sidecar~{}~{pod}.{ns}~{ns}.svc.cluster.local", pod_ip(pod)),
        ),
        kv("service.name", service),
        kv("k8s.namespace.name", ns),
        kv("k8s.pod.name", pod),
        kv("istio.canonical_service", service),
        kv("istio.canonical_revision", version),
        kv("istio.namespace", ns),
    ]
}
