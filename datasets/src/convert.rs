//! Converters from public trace formats (Nezha span CSV, Zipkin v2 JSON) to OTLP.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind};
use serde::Deserialize;

use crate::error::DatasetError;
use crate::otlp::{export, in_end_time_order, kv, kv_int};

/// A span with its resource attributes.
type ResourceSpan = (Vec<KeyValue>, Span);
/// (service, Zipkin kind, assigned OTLP id) of one holder of a Zipkin span id.
type Holder<'a> = (Option<&'a str>, Option<&'a str>, Vec<u8>);

fn bad(path: &Path, line: usize, msg: impl Into<String>) -> DatasetError {
    DatasetError::BadFile {
        path: path.to_path_buf(),
        detail: format!("line {line}: {}", msg.into()),
    }
}

/// `cartservice-7d9f8c-abc12` → `cartservice` (drop the ReplicaSet hash and pod suffix).
pub fn service_from_pod(pod: &str) -> &str {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if parts.len() == 3 { parts[2] } else { pod }
}

fn decode_hex_id(s: &str, len: usize) -> Option<Vec<u8>> {
    let bytes = hex::decode(s).ok()?;
    if bytes.is_empty() || bytes.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - bytes.len()];
    out.extend(bytes);
    Some(out)
}

/// One row of a Nezha span CSV (the real-trace suites build and inject rows too).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NezhaRow {
    pub trace: Vec<u8>,
    pub id: Vec<u8>,
    pub parent: Option<Vec<u8>>,
    pub pod: String,
    pub op: String,
    pub start: u64,
    pub end: u64,
    /// gRPC status to record on the span (the CSV has none; injected probes do).
    pub grpc_status: Option<i64>,
}

/// A file's text; `*.gz` files are gunzipped.
pub(crate) fn read_text(path: &Path) -> Result<String, DatasetError> {
    let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::with_capacity(bytes.len() * 8);
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(bytes.as_slice()),
            &mut out,
        )
        .map_err(|e| DatasetError::io(path, e))?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|_| bad(path, 0, "not utf-8"))
}

/// Nezha span CSV (plain or `.csv.gz`) to OTLP. Kinds are inferred: a root span or a
/// span whose parent lives in another service is the callee's SERVER span; a span whose
/// children live in another service is the caller's CLIENT span; the rest are INTERNAL.
pub fn convert_nezha_csv(path: &Path) -> Result<Vec<ExportTraceServiceRequest>, DatasetError> {
    let rows = parse_nezha_rows(path, &read_text(path)?)?;
    Ok(nezha_rows_to_otlp(&rows))
}

/// The rows of a Nezha span CSV's text (header first); `path` names it in errors.
pub(crate) fn parse_nezha_rows(path: &Path, text: &str) -> Result<Vec<NezhaRow>, DatasetError> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 8 {
            return Err(bad(
                path,
                n + 1,
                format!("expected 8 fields, got {}", f.len()),
            ));
        }
        let id = |s: &str, len| {
            decode_hex_id(s, len).ok_or_else(|| bad(path, n + 1, format!("bad id {s:?}")))
        };
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| bad(path, n + 1, format!("bad number {s:?}")))
        };
        rows.push(NezhaRow {
            trace: id(f[0], 16)?,
            id: id(f[1], 8)?,
            parent: if f[2] == "root" || f[2].is_empty() {
                None
            } else {
                Some(id(f[2], 8)?)
            },
            pod: f[3].to_string(),
            op: f[4].to_string(),
            start: num(f[5])?,
            end: num(f[6])?,
            grpc_status: None,
        });
    }
    Ok(rows)
}

/// Rows to OTLP requests in span end-time order (kinds inferred as
/// [`convert_nezha_csv`] says).
pub(crate) fn nezha_rows_to_otlp(rows: &[NezhaRow]) -> Vec<ExportTraceServiceRequest> {
    let service_of: HashMap<(&[u8], &[u8]), &str> = rows
        .iter()
        .map(|r| {
            (
                (r.trace.as_slice(), r.id.as_slice()),
                service_from_pod(&r.pod),
            )
        })
        .collect();
    let mut has_remote_child: HashMap<(&[u8], &[u8]), &str> = HashMap::new();
    for r in rows {
        if let Some(p) = &r.parent
            && let Some(ps) = service_of.get(&(r.trace.as_slice(), p.as_slice()))
            && *ps != service_from_pod(&r.pod)
        {
            has_remote_child.insert((r.trace.as_slice(), p.as_slice()), service_from_pod(&r.pod));
        }
    }
    let mut by_trace: Vec<(Vec<u8>, Vec<ResourceSpan>)> = Vec::new();
    let mut trace_index: HashMap<Vec<u8>, usize> = HashMap::new();
    for r in rows {
        let service = service_from_pod(&r.pod);
        let parent_service = r
            .parent
            .as_ref()
            .and_then(|p| service_of.get(&(r.trace.as_slice(), p.as_slice())));
        let key = (r.trace.as_slice(), r.id.as_slice());
        let (kind, mut attrs) = if parent_service.is_none_or(|ps| *ps != service) {
            (SpanKind::Server, vec![])
        } else if let Some(callee) = has_remote_child.get(&key) {
            (
                SpanKind::Client,
                vec![kv("peer.service", callee), kv("server.address", callee)],
            )
        } else {
            (SpanKind::Internal, vec![])
        };
        let op = r.op.trim_start_matches("grpc.");
        if let Some((svc, method)) = op.split_once('/')
            && kind != SpanKind::Internal
            && svc.contains('.')
        {
            attrs.extend([
                kv("rpc.system", "grpc"),
                kv("rpc.service", svc),
                kv("rpc.method", method.trim_end_matches('.')),
            ]);
        }
        let mut status = None;
        if let Some(code) = r.grpc_status.filter(|_| kind != SpanKind::Internal) {
            attrs.push(kv_int("rpc.grpc.status_code", code));
            status = (code != 0).then(|| Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            });
        }
        let span = Span {
            trace_id: r.trace.clone(),
            span_id: r.id.clone(),
            parent_span_id: r.parent.clone().unwrap_or_default(),
            name: r.op.clone(),
            kind: kind as i32,
            start_time_unix_nano: r.start,
            end_time_unix_nano: r.end.max(r.start),
            attributes: attrs,
            status,
            ..Default::default()
        };
        let resource = vec![kv("service.name", service), kv("k8s.pod.name", &r.pod)];
        let idx = *trace_index.entry(r.trace.clone()).or_insert_with(|| {
            by_trace.push((r.trace.clone(), Vec::new()));
            by_trace.len() - 1
        });
        by_trace[idx].1.push((resource, span));
    }
    chunk(by_trace.into_iter().map(|(_, s)| s).collect())
}

/// The converted spans as a collector would have sent them: in end-time order.
fn chunk(traces: Vec<Vec<(Vec<KeyValue>, Span)>>) -> Vec<ExportTraceServiceRequest> {
    let spans = traces.into_iter().flatten().collect();
    in_end_time_order(vec![export(spans)])
}

/// Traces kept whole, [`ZIPKIN_TRACES_PER_REQUEST`] to a request. Zipkin's shared spans
/// (one id for a client and several server halves, most without a duration) pair only
/// when their trace arrives together; their timing cannot order them.
fn whole_traces(traces: Vec<Vec<(Vec<KeyValue>, Span)>>) -> Vec<ExportTraceServiceRequest> {
    traces
        .chunks(ZIPKIN_TRACES_PER_REQUEST)
        .map(|group| export(group.iter().flatten().cloned().collect()))
        .collect()
}

const ZIPKIN_TRACES_PER_REQUEST: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan {
    trace_id: String,
    id: String,
    parent_id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<ZipkinEndpoint>,
    remote_endpoint: Option<ZipkinEndpoint>,
    #[serde(default)]
    tags: HashMap<String, String>,
}

/// Zipkin tag names to current OTel semantic-convention names; others kept as-is.
fn otel_key(tag: &str) -> &str {
    match tag {
        "http.path" => "url.path",
        "http.method" => "http.request.method",
        "http.status_code" => "http.response.status_code",
        "http.uri.client" | "http.url" => "url.full",
        "sql.query" | "cassandra.query" => "db.query.text",
        other => other,
    }
}

/// Zipkin v2 JSON (array of spans) to OTLP: µs → ns, kinds mapped, tags to attributes,
/// remote endpoints to `peer.service`/`server.address`. A `shared` SERVER span reuses
/// its client's id in Zipkin; it gets a derived id with the client as parent, and
/// children in the server's service hang under that server half.
pub fn convert_zipkin_json(path: &Path) -> Result<Vec<ExportTraceServiceRequest>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))?;
    let spans: Vec<ZipkinSpan> =
        serde_json::from_str(&text).map_err(|e| bad(path, e.line(), e.to_string()))?;
    // Zipkin reuses one id for a client and its shared server (and for local fragments);
    // OTLP ids must be unique, so later holders get a derived id hung under the first.
    let mut used: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
    let mut assigned: Vec<Option<Vec<u8>>> = vec![None; spans.len()];
    // (trace, original id) → [(service, kind, assigned id)] for parent resolution.
    let mut holders: HashMap<(&str, &str), Vec<Holder>> = HashMap::new();
    // CLIENT spans first: a shared id stays with the client, so the server half (whatever
    // its place in the file) becomes the client's child, as span pairing expects.
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i].kind.as_deref() != Some("CLIENT"));
    for i in order {
        let z = &spans[i];
        let (Some(trace), Some(id)) = (decode_hex_id(&z.trace_id, 16), decode_hex_id(&z.id, 8))
        else {
            continue;
        };
        let mut candidate = id.clone();
        let mut k = 0u8;
        while !used.insert((trace.clone(), candidate.clone())) {
            k = k.wrapping_add(1);
            candidate = id.clone();
            candidate[0] ^= 0x80;
            candidate[7] ^= k.wrapping_sub(1);
        }
        let service = z
            .local_endpoint
            .as_ref()
            .and_then(|l| l.service_name.as_deref());
        holders
            .entry((z.trace_id.as_str(), z.id.as_str()))
            .or_default()
            .push((service, z.kind.as_deref(), candidate.clone()));
        assigned[i] = Some(candidate);
    }
    let mut traces: Vec<Vec<(Vec<KeyValue>, Span)>> = Vec::new();
    let mut trace_index: HashMap<Vec<u8>, usize> = HashMap::new();
    for (n, z) in spans.iter().enumerate() {
        let trace = decode_hex_id(&z.trace_id, 16)
            .ok_or_else(|| bad(path, 0, format!("span {n}: bad traceId")))?;
        let span_id = assigned[n]
            .clone()
            .ok_or_else(|| bad(path, 0, format!("span {n}: bad id")))?;
        let own_service = z
            .local_endpoint
            .as_ref()
            .and_then(|l| l.service_name.as_deref());
        let kind = match z.kind.as_deref() {
            Some("CLIENT") => SpanKind::Client,
            Some("SERVER") => SpanKind::Server,
            Some("PRODUCER") => SpanKind::Producer,
            Some("CONSUMER") => SpanKind::Consumer,
            _ => SpanKind::Internal,
        };
        let same_id = &holders[&(z.trace_id.as_str(), z.id.as_str())];
        let parent_id = if same_id[0].2 != span_id {
            // A later holder of a reused id: child of the first holder (the client half).
            same_id[0].2.clone()
        } else {
            z.parent_id
                .as_deref()
                .and_then(|p| {
                    let cands = holders.get(&(z.trace_id.as_str(), p))?;
                    let pick = cands
                        .iter()
                        .find(|(s, k, _)| *s == own_service && *k == Some("SERVER"))
                        .or_else(|| cands.iter().find(|(_, k, _)| *k == Some("CLIENT")))
                        .unwrap_or(&cands[0]);
                    Some(pick.2.clone())
                })
                .or_else(|| z.parent_id.as_deref().and_then(|p| decode_hex_id(p, 8)))
                .unwrap_or_default()
        };
        let mut attrs: Vec<KeyValue> = z.tags.iter().map(|(k, v)| kv(otel_key(k), v)).collect();
        attrs.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(remote) = &z.remote_endpoint {
            if let Some(s) = &remote.service_name {
                attrs.push(kv("peer.service", s));
            }
            if let Some(ip) = remote.ipv4.as_ref().or(remote.ipv6.as_ref()) {
                attrs.push(kv(
                    if kind == SpanKind::Client {
                        "server.address"
                    } else {
                        "client.address"
                    },
                    ip,
                ));
            }
            if let Some(port) = remote.port {
                attrs.push(kv_int(
                    if kind == SpanKind::Client {
                        "server.port"
                    } else {
                        "client.port"
                    },
                    i64::from(port),
                ));
            }
        }
        let start = z.timestamp.unwrap_or(0).saturating_mul(1000);
        let span = Span {
            trace_id: trace.clone(),
            span_id,
            parent_span_id: parent_id,
            name: z.name.clone().unwrap_or_default(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start.saturating_add(z.duration.unwrap_or(0).saturating_mul(1000)),
            attributes: attrs,
            ..Default::default()
        };
        let local = z.local_endpoint.as_ref();
        let service = local
            .and_then(|l| l.service_name.clone())
            .unwrap_or_else(|| "unknown".into());
        let mut resource = vec![kv("service.name", &service)];
        if let Some(ip) = local.and_then(|l| l.ipv4.as_ref().or(l.ipv6.as_ref())) {
            resource.push(kv("host.ip", ip));
        }
        let idx = *trace_index.entry(trace).or_insert_with(|| {
            traces.push(Vec::new());
            traces.len() - 1
        });
        traces[idx].push((resource, span));
    }
    Ok(whole_traces(traces))
}

#[cfg(test)]
mod tests {
    type SpanKey = (Vec<u8>, Vec<u8>);
    use super::*;
    use crate::otlp::{attr, spans_with_service};
    use std::collections::{BTreeSet, HashSet};
    use std::path::PathBuf;

    fn shared(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/datasets")
            .join(rel)
    }

    /// (caller, callee, operation) by pairing each SERVER span with a parent in another
    /// service, plus CLIENT spans to an uninstrumented peer (no server child).
    fn edges(
        reqs: &[ExportTraceServiceRequest],
        virtual_peers: bool,
    ) -> (BTreeSet<String>, BTreeSet<(String, String, String)>) {
        let mut by_id: HashMap<SpanKey, (String, &Span)> = HashMap::new();
        let mut services = BTreeSet::new();
        for r in reqs {
            for (svc, s) in spans_with_service(r) {
                services.insert(svc.to_string());
                by_id.insert(
                    (s.trace_id.clone(), s.span_id.clone()),
                    (svc.to_string(), s),
                );
            }
        }
        let mut edges = BTreeSet::new();
        let mut clients_with_server: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
        for (svc, s) in by_id.values() {
            if s.kind != SpanKind::Server as i32 || s.parent_span_id.is_empty() {
                continue;
            }
            // Walk up to the nearest span of another service (the caller).
            let mut cur = (s.trace_id.clone(), s.parent_span_id.clone());
            while let Some((psvc, p)) = by_id.get(&cur) {
                if psvc != svc {
                    clients_with_server.insert(cur.clone());
                    edges.insert((
                        psvc.clone(),
                        svc.clone(),
                        s.name.trim_start_matches("grpc.").to_string(),
                    ));
                    break;
                }
                if p.parent_span_id.is_empty() {
                    break;
                }
                cur = (p.trace_id.clone(), p.parent_span_id.clone());
            }
        }
        for (key, (svc, s)) in by_id.iter().filter(|_| virtual_peers) {
            if s.kind == SpanKind::Client as i32
                && !clients_with_server.contains(key)
                && let Some(peer) = attr(&s.attributes, "peer.service")
                && peer != svc
            {
                edges.insert((svc.clone(), peer.to_string(), s.name.clone()));
            }
        }
        (services, edges)
    }

    #[test]
    fn pod_names_lose_replicaset_and_pod_suffix() {
        assert_eq!(service_from_pod("cartservice-7d9f8c-abc12"), "cartservice");
        assert_eq!(service_from_pod("frontend-579b9bff58-t2dbm"), "frontend");
        assert_eq!(service_from_pod("redis"), "redis");
    }

    #[test]
    fn nezha_online_boutique_yields_ten_services_and_eighteen_edges() {
        let reqs = convert_nezha_csv(&shared(
            "nezha-onlineboutique/construct_data/2022-08-23/trace/17_00_trace.csv",
        ))
        .unwrap();
        let (services, edges) = edges(&reqs, true);
        assert_eq!(services.len(), 10, "{services:?}");
        assert_eq!(edges.len(), 18, "{edges:#?}");
        assert!(
            edges
                .iter()
                .any(|(a, b, _)| a == "checkoutservice" && b == "paymentservice")
        );
    }

    /// SOURCE.txt's 41 counts every cross-service parentId join on the raw file; because
    /// Zipkin reuses one id for a client and its shared server, a join through such an id
    /// pairs a child with both halves, so that count includes non-calls. Client→server
    /// pairing of the converted spans gives the real call edges: a subset of those 41.
    #[test]
    fn zipkin_smartthings_yields_sixteen_services_and_its_call_edges() {
        let path =
            shared("zipkin-lens-testdata/zipkin-lens/testdata/smartthings-mobile-web-install.json");
        let raw: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let svc = |s: &serde_json::Value| {
            s["localEndpoint"]["serviceName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let mut raw_joins = BTreeSet::new();
        for s in &raw {
            for p in raw
                .iter()
                .filter(|p| s["parentId"].as_str().is_some() && p["id"] == s["parentId"])
            {
                if svc(p) != svc(s) {
                    raw_joins.insert((svc(p), svc(s)));
                }
            }
        }
        assert_eq!(raw_joins.len(), 41);
        let reqs = convert_zipkin_json(&path).unwrap();
        let (services, edges) = edges(&reqs, false);
        assert_eq!(services.len(), 16, "{services:?}");
        let pairs: BTreeSet<(String, String)> = edges
            .iter()
            .map(|(a, b, _)| (a.clone(), b.clone()))
            .collect();
        assert_eq!(pairs.len(), 28, "{pairs:#?}");
        assert!(
            pairs.is_subset(&raw_joins),
            "{:?}",
            pairs.difference(&raw_joins).collect::<Vec<_>>()
        );
        let spans: usize = reqs.iter().map(|r| spans_with_service(r).count()).sum();
        assert_eq!(spans, 1041);
        let ids: HashSet<(Vec<u8>, Vec<u8>)> = reqs
            .iter()
            .flat_map(|r| {
                spans_with_service(r).map(|(_, s)| (s.trace_id.clone(), s.span_id.clone()))
            })
            .collect();
        assert_eq!(ids.len(), 1041, "span ids must be unique after conversion");
    }

    #[test]
    fn shared_server_half_is_the_clients_child_whatever_the_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shared.json");
        std::fs::write(
            &p,
            r#"[{"traceId":"a1","id":"b2","parentId":"c3","kind":"SERVER","shared":true,
                 "localEndpoint":{"serviceName":"auth"},"timestamp":10,"duration":5},
                {"traceId":"a1","id":"b2","parentId":"c3","kind":"CLIENT",
                 "localEndpoint":{"serviceName":"bouncer"},"timestamp":9,"duration":7}]"#,
        )
        .unwrap();
        let reqs = convert_zipkin_json(&p).unwrap();
        let spans: Vec<(&str, &Span)> = spans_with_service(&reqs[0]).collect();
        let client = spans.iter().find(|(s, _)| *s == "bouncer").unwrap().1;
        let server = spans.iter().find(|(s, _)| *s == "auth").unwrap().1;
        assert_eq!(client.span_id, decode_hex_id("b2", 8).unwrap());
        assert_eq!(server.parent_span_id, client.span_id);
        assert_ne!(server.span_id, client.span_id);
    }

    #[test]
    fn gzipped_nezha_csv_converts_like_the_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n\
                   0a,0b,root,frontend-1-a,hipstershop.Frontend/Recv.,10,90,80\n\
                   0a,0c,0b,frontend-1-a,hipstershop.CartService/GetCart,20,80,60\n\
                   0a,0d,0c,cartservice-2-b,hipstershop.CartService/GetCart,30,70,40\n";
        let plain = dir.path().join("04_02_trace.csv");
        std::fs::write(&plain, csv).unwrap();
        let gz = dir.path().join("04_02_trace.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, csv.as_bytes()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let (a, b) = (
            convert_nezha_csv(&plain).unwrap(),
            convert_nezha_csv(&gz).unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(spans_with_service(&a[0]).count(), 3);
        std::fs::write(&gz, b"not gzip").unwrap();
        assert!(convert_nezha_csv(&gz).is_err());
    }

    #[test]
    fn bad_csv_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.csv");
        std::fs::write(&p, "h\nnot,enough\n").unwrap();
        let err = convert_nezha_csv(&p).unwrap_err().to_string();
        assert!(
            err.contains("broken.csv") && err.contains("line 2"),
            "{err}"
        );
    }
}
