//! The span emitter: request trees → OTLP spans, Istio-sidecar style (default) or plain
//! OpenTelemetry SDK style, plus optional Envoy access-log records for every hop and
//! consistent probability sampling.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::bodies::body_sizes;
use super::logs::{HopLog, LogSink};
use super::sampling::Sampler;
use super::topology::{Entry, Hop, Name, fill_params, is_grpc};
use super::{REQUESTS_PER_EXPORT, SEC};
use crate::otlp::{export, kv, kv_int};

/// Which instrumentation produced the spans (`--spans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SpanStyle {
    /// Istio/Envoy sidecar spans: `upstream_cluster`, `node_id`, principals, …
    #[default]
    Istio,
    /// Application OpenTelemetry SDK spans, current semantic conventions, no mesh
    /// attributes (so no identities).
    Sdk,
}

/// How one injected call deviates from mesh normal.
#[derive(Clone)]
pub(crate) struct Inject {
    pub hop: Hop,
    pub status: u32,
    pub mtls: bool,
    /// Principal the caller presents (identity spoof presents another service's).
    pub principal_of: Option<Name>,
    /// `false` for an uninstrumented destination (no server span).
    pub instrumented: bool,
}

pub(crate) fn inject(hop: Hop) -> Inject {
    Inject {
        hop,
        status: 200,
        mtls: true,
        principal_of: None,
        instrumented: true,
    }
}

pub(crate) struct Gen {
    pub rng: StdRng,
    spans: Vec<(Vec<KeyValue>, Span)>,
    pub out: Vec<ExportTraceServiceRequest>,
    requests_in_batch: usize,
    pub traces: u64,
    pub span_count: u64,
    pub ns: Name,
    pub style: SpanStyle,
    /// The root span's URL keeps the route template (boutique's historical output).
    pub literal_entry_urls: bool,
    /// Version label and pod-name suffix in use (rollouts and new pods change them).
    pub version: &'static str,
    pub pod_generation: u32,
    /// The hourly job's new release adds a step (benign-jobs).
    pub job_adds_step: bool,
    /// The new version's first entry calls a new route in place of its first hop's, on
    /// the same known edge (benign-rollout: what a rollout introduces).
    pub rollout_adds_route: bool,
    pub logs: Option<LogSink>,
    pub sampler: Sampler,
    /// Injected (attack) traces are kept whatever the sampling decision.
    pub force_keep: bool,
    /// Pod of the most recent span's resource.
    last_pod: String,
    /// The exfiltration under way, if any: which calls get outsized responses.
    pub exfil: Option<Exfil>,
}

/// One known endpoint of a known edge answering `scale`× its usual response size
/// between `from` and `until` (event time), at whatever rate normal traffic calls it.
pub(crate) struct Exfil {
    pub hop: Hop,
    pub from: i64,
    pub until: i64,
    pub scale: u64,
    /// Calls scaled so far.
    pub calls: u64,
}

impl Exfil {
    fn covers(&self, hop: &Hop, t: i64) -> bool {
        (self.from..self.until).contains(&t) && *hop == self.hop
    }
}

/// Pod IP as a function of the pod name, so that a pod keeps one resource.
pub(crate) fn pod_ip(pod: &str) -> String {
    let ip_seed = pod
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.0.{}.{}", ip_seed % 4, 2 + ip_seed % 248)
}

impl Gen {
    pub fn new(rng: StdRng, ns: Name, style: SpanStyle, sampler: Sampler) -> Self {
        Self {
            rng,
            spans: Vec::new(),
            out: Vec::new(),
            requests_in_batch: 0,
            traces: 0,
            span_count: 0,
            ns,
            style,
            literal_entry_urls: true,
            version: "v1",
            pod_generation: 0,
            job_adds_step: false,
            rollout_adds_route: false,
            logs: None,
            sampler,
            force_keep: false,
            last_pod: String::new(),
            exfil: None,
        }
    }

    fn id(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.rng.random::<u8>()).collect()
    }

    fn resource(&mut self, service: &str) -> Vec<KeyValue> {
        let ns = &self.ns;
        let replica = self.pod_generation * 16 + self.rng.random_range(0..3u32);
        let pod = format!("{service}-{}-{replica:05x}", self.version.replace('.', ""));
        let ip = pod_ip(&pod);
        let resource = match self.style {
            SpanStyle::Istio => vec![
                kv("service.name", &format!("{service}.{ns}")),
                kv("istio.canonical_service", service),
                kv("istio.namespace", ns),
                kv("istio.canonical_revision", self.version),
                kv(
                    "node_id",
                    &format!("sidecar~{ip}~{pod}.{ns}~{ns}.svc.cluster.local"),
                ),
                kv("k8s.pod.name", &pod),
            ],
            SpanStyle::Sdk => vec![
                kv("service.name", service),
                kv("service.namespace", ns),
                kv("service.version", self.version),
                kv("service.instance.id", &pod),
                kv("k8s.namespace.name", ns),
                kv("k8s.pod.name", &pod),
                kv("telemetry.sdk.language", "java"),
                kv("telemetry.sdk.name", "opentelemetry"),
            ],
        };
        self.last_pod = pod;
        resource
    }

    #[allow(clippy::too_many_arguments)] // one span's fields, all needed
    fn span(
        &mut self,
        service: &str,
        kind: SpanKind,
        trace: &[u8],
        parent: &[u8],
        t: i64,
        dur: i64,
        name: &str,
        attrs: Vec<KeyValue>,
        error: bool,
    ) -> Vec<u8> {
        let id = self.id(8);
        let resource = self.resource(service);
        let status = (error && self.style == SpanStyle::Sdk).then(|| Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        });
        self.spans.push((
            resource,
            Span {
                trace_id: trace.to_vec(),
                span_id: id.clone(),
                parent_span_id: parent.to_vec(),
                name: name.into(),
                kind: kind as i32,
                start_time_unix_nano: t as u64,
                end_time_unix_nano: (t + dur) as u64,
                trace_state: self.sampler.trace_state(trace),
                attributes: attrs,
                status,
                ..Default::default()
            },
        ));
        self.span_count += 1;
        id
    }

    pub fn principal(&self, svc: &str) -> String {
        format!("spiffe://cluster.local/ns/{}/sa/{svc}", self.ns)
    }

    /// A concrete path for a route template (`{param}` → a value of the param's kind).
    fn concrete(&mut self, template: &str) -> String {
        if !template.contains('{') {
            return template.to_string();
        }
        let rng = &mut self.rng;
        // Values as in TrainTicket's initial data; ids are UUIDs. Small value sets keep
        // the routes an Istio span shows (no route template there) few per edge.
        fill_params(template, |name| {
            let n = name.to_ascii_lowercase();
            let pick =
                |rng: &mut StdRng, set: &[&str]| set[rng.random_range(0..set.len())].to_string();
            if n.contains("date") {
                // A week of travel dates: dates are not templated in a route, and the
                // collector caps routes per edge (200).
                format!("2026-01-{:02}", rng.random_range(5..12u32))
            } else if n.contains("station") {
                pick(
                    rng,
                    &[
                        "shanghai", "beijing", "nanjing", "suzhou", "taiyuan", "wuxi",
                    ],
                )
            } else if n == "traintype" || n == "traintypeid" {
                pick(
                    rng,
                    &[
                        "GaoTieOne",
                        "GaoTieTwo",
                        "DongCheOne",
                        "ZhiDa",
                        "TeKuai",
                        "KuaiSu",
                    ],
                )
            } else if n.contains("trip") || n.contains("trainnumber") {
                pick(
                    rng,
                    &[
                        "G1234", "G1235", "G1236", "G1237", "D1345", "Z1234", "Z1235", "T1235",
                        "K1345",
                    ],
                )
            } else if n == "configname" {
                "DirectTicketAllocationProportion".into()
            } else if n == "iswithinregion" {
                pick(rng, &["true", "false"])
            } else if n.ends_with("id") || n.contains("uuid") {
                let b: [u8; 16] = rng.random();
                let x = hex::encode(b);
                format!(
                    "{}-{}-{}-{}-{}",
                    &x[..8],
                    &x[8..12],
                    &x[12..16],
                    &x[16..20],
                    &x[20..]
                )
            } else {
                rng.random_range(1..100_000u32).to_string()
            }
        })
    }

    /// Client + server span pair of one hop (client only for databases and
    /// uninstrumented destinations); returns the server span's id (else the client's).
    fn hop(
        &mut self,
        trace: &[u8],
        parent: &[u8],
        t: i64,
        inj: &Inject,
        request_id: &str,
    ) -> Vec<u8> {
        let Hop {
            caller,
            callee,
            port,
            method,
            path: template,
            db,
        } = &inj.hop;
        let (caller, callee, port, method) = (caller.as_ref(), callee.as_ref(), *port, method);
        let ns = self.ns.clone();
        let path = self.concrete(template);
        let mesh = inj.instrumented || db.is_some();
        let host = if mesh {
            format!("{callee}.{ns}.svc.cluster.local")
        } else {
            callee.to_string()
        };
        let status = inj.status;
        let error = status >= 500;
        let src_principal = self.principal(inj.principal_of.as_deref().unwrap_or(caller));
        let dst_principal = self.principal(callee);
        // Keyed by the trace and the hop's start: one value per call, no RNG draw.
        let call_id = [trace, &t.to_le_bytes()].concat();
        let scale = match self.exfil.as_mut() {
            Some(e) if e.covers(&inj.hop, t) => {
                e.calls += 1;
                e.scale
            }
            _ => 1,
        };
        let (request_bytes, response_bytes) = body_sizes(&inj.hop, status, &call_id, scale);
        let (mut client_attrs, mut server_attrs, name) = match self.style {
            SpanStyle::Istio => {
                // Istio's historical boutique output: every destination as a mesh host.
                let host = format!("{callee}.{ns}.svc.cluster.local");
                let mut common = vec![
                    kv("http.method", method),
                    kv("http.url", &format!("http://{host}:{port}{path}")),
                    kv("http.status_code", &status.to_string()),
                    kv("guid:x-request-id", request_id),
                    kv("response_flags", "-"),
                    kv(
                        "peer.address",
                        &format!("10.1.{}.{}:{port}", port % 200, port % 97),
                    ),
                ];
                // Istio's access-log attribute: what the sidecars negotiated, stated
                // explicitly so a plaintext call is visible as such rather than as a
                // missing identity.
                common.push(kv(
                    "connection_security_policy",
                    if inj.mtls { "mutual_tls" } else { "none" },
                ));
                if inj.mtls {
                    common.push(kv("source.principal", &src_principal));
                    common.push(kv("destination.principal", &dst_principal));
                }
                let mut client = common.clone();
                client.push(kv("upstream_cluster", &format!("outbound|{port}||{host}")));
                client.push(kv(
                    "upstream_cluster.name",
                    &format!("outbound|{port}||{host}"),
                ));
                let mut server = common;
                server.push(kv("upstream_cluster", &format!("inbound|{port}||")));
                let name = format!("{host}:{port}{}", if db.is_some() { "" } else { &path });
                (client, server, name)
            }
            SpanStyle::Sdk => {
                let grpc = is_grpc(method, template);
                let mut client = Vec::new();
                let mut server = Vec::new();
                let name = if grpc {
                    let (svc, m) = template[1..].split_once('/').unwrap_or(("", ""));
                    let code = grpc_code(status);
                    for a in [&mut client, &mut server] {
                        a.extend([
                            kv("rpc.system", "grpc"),
                            kv("rpc.service", svc),
                            kv("rpc.method", m),
                            kv_int("rpc.grpc.status_code", code),
                        ]);
                    }
                    format!("{svc}/{m}")
                } else {
                    client.extend([
                        kv("http.request.method", method),
                        kv("url.full", &format!("http://{host}:{port}{path}")),
                        kv_int("http.response.status_code", i64::from(status)),
                    ]);
                    server.extend([
                        kv("http.request.method", method),
                        kv("http.route", template),
                        kv("url.path", &path),
                        kv("url.scheme", "http"),
                        kv_int("http.response.status_code", i64::from(status)),
                    ]);
                    format!("{method} {template}")
                };
                client.push(kv("server.address", &host));
                client.push(kv_int("server.port", i64::from(port)));
                server.push(kv("server.address", &host));
                server.push(kv_int("server.port", i64::from(port)));
                (client, server, name)
            }
        };
        if let Some(system) = db {
            client_attrs = vec![
                kv("db.system", system),
                kv("db.operation.name", method),
                kv("db.collection.name", &path),
                kv("server.address", &format!("{callee}.{ns}")),
                kv_int("server.port", i64::from(port)),
            ];
        }
        // Both sides saw the same bodies. SDK gRPC spans have no size attribute (gRPC
        // message sizes are per-message events); a sidecar reports sizes for any HTTP/2.
        if db.is_none() && !(self.style == SpanStyle::Sdk && is_grpc(method, template)) {
            for attrs in [&mut client_attrs, &mut server_attrs] {
                attrs.push(kv_int("http.request.body.size", request_bytes as i64));
                attrs.push(kv_int("http.response.body.size", response_bytes as i64));
            }
        }
        let dur = self.rng.random_range(1_000_000..20_000_000i64);
        let client_name = match (self.style, db) {
            (SpanStyle::Sdk, Some(_)) => format!("{method} {path}"),
            (SpanStyle::Sdk, None) if !is_grpc(method, template) => method.to_string(),
            _ => name.clone(),
        };
        let client = self.span(
            caller,
            SpanKind::Client,
            trace,
            parent,
            t,
            dur,
            &client_name,
            client_attrs,
            error,
        );
        let caller_pod = std::mem::take(&mut self.last_pod);
        let server = if db.is_some() || !inj.instrumented {
            None
        } else {
            let id = self.span(
                callee,
                SpanKind::Server,
                trace,
                &client,
                t + 200_000,
                dur - 400_000,
                &name,
                server_attrs,
                error,
            );
            Some((id, std::mem::take(&mut self.last_pod)))
        };
        if let Some(logs) = self.logs.as_mut() {
            logs.hop(HopLog {
                t,
                dur,
                method,
                path: &path,
                grpc: is_grpc(method, template),
                db: db.is_some(),
                mesh,
                status,
                request_id,
                caller,
                caller_pod: &caller_pod,
                callee,
                callee_pod: server.as_ref().map(|(_, p)| p.as_str()),
                port,
                ns: &ns,
                mtls: inj.mtls,
                src_principal: &src_principal,
                dst_principal: &dst_principal,
                trace,
                client_span: &client,
                server_span: server.as_ref().map(|(id, _)| id.as_slice()),
                version: self.version,
                request_bytes,
                response_bytes,
            });
        }
        server.map(|(id, _)| id).unwrap_or(client)
    }

    /// One request: root SERVER at the entry service, then every hop under the caller's
    /// latest server span.
    pub fn request(&mut self, entry_service: &str, route: &str, hops: &[Inject], t: i64) {
        let mut trace = self.id(16);
        if self.force_keep {
            self.sampler.force_keep(&mut trace);
        }
        let request_id = hex::encode(self.id(16));
        let (spans_before, count_before) = (self.spans.len(), self.span_count);
        let (method, template) = route.split_once(' ').unwrap_or(("GET", route));
        let path = if self.literal_entry_urls {
            template.to_string()
        } else {
            self.concrete(template)
        };
        let ns = self.ns.clone();
        let attrs = match self.style {
            SpanStyle::Istio => vec![
                kv("http.method", method),
                kv("http.url", &format!("http://{entry_service}.{ns}{path}")),
                kv("http.status_code", "200"),
                kv("guid:x-request-id", &request_id),
                kv("upstream_cluster", "inbound|8080||"),
            ],
            SpanStyle::Sdk => vec![
                kv("http.request.method", method),
                kv("http.route", template),
                kv("url.path", &path),
                kv("url.scheme", "http"),
                kv("server.address", &format!("{entry_service}.{ns}")),
                kv_int("http.response.status_code", 200),
            ],
        };
        let root = self.span(
            entry_service,
            SpanKind::Server,
            &trace,
            &[],
            t,
            50_000_000,
            route,
            attrs,
            false,
        );
        let mut servers: Vec<(&str, Vec<u8>)> = vec![(entry_service, root)];
        for (i, inj) in hops.iter().enumerate() {
            let parent = servers
                .iter()
                .rev()
                .find(|(s, _)| *s == inj.hop.caller)
                .map(|(_, id)| id.clone())
                .unwrap_or_else(|| servers[0].1.clone());
            let server = self.hop(
                &trace,
                &parent,
                t + (i as i64 + 1) * 2_000_000,
                inj,
                &request_id,
            );
            servers.push((inj.hop.callee.as_ref(), server));
        }
        if !self.force_keep && !self.sampler.keep(&trace) {
            // Sampled out: the spans go, the access logs (every request) stay.
            self.spans.truncate(spans_before);
            self.span_count = count_before;
            return;
        }
        self.traces += 1;
        self.requests_in_batch += 1;
        if self.requests_in_batch >= REQUESTS_PER_EXPORT {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.spans.is_empty() {
            self.out.push(export(std::mem::take(&mut self.spans)));
        }
        self.requests_in_batch = 0;
    }

    /// Normal traffic from `from` to `until`: entry requests at `rate`/s with a ±50 %
    /// diurnal sine, the rare route every `rare_every` requests, ~1 % 503s on the last
    /// hop, the hourly job.
    pub fn normal(
        &mut self,
        topo: &super::Topology,
        from: i64,
        until: i64,
        rate: f64,
        rare_every: u64,
    ) {
        let mut t = from;
        let mut n = 0u64;
        while t < until {
            // Diurnal load: ±50 % over a 24 h sine.
            let hour = (t / SEC) as f64 / 3600.0;
            let load = rate * (1.0 + 0.5 * (hour / 24.0 * std::f64::consts::TAU).sin());
            let entry: &Entry = if rare_every > 0 && n % rare_every == rare_every - 1 {
                &topo.rare
            } else {
                &topo.entries[self.rng.random_range(0..topo.entries.len())]
            };
            let mut injs: Vec<Inject> = entry.hops.iter().map(|h| inject(h.clone())).collect();
            if self.rollout_adds_route
                && std::ptr::eq(entry, &topo.entries[0])
                && let Some(first) = entry.hops.first()
            {
                let mut hop = first.clone();
                // A new gRPC method, or a new HTTP path under the known one.
                let sep = if hop.path.starts_with('/') {
                    "/preview"
                } else {
                    "V2"
                };
                hop.path = format!("{}{sep}", hop.path.trim_end_matches('/')).into();
                injs[0] = inject(hop);
            }
            // Error rate ~1 % on the last hop.
            if self.rng.random_bool(0.01)
                && let Some(last) = injs.last_mut()
            {
                last.status = 503;
            }
            // Exfiltrating requests are kept whatever the sampling, like injected ones.
            let keep = self.force_keep;
            self.force_keep |= self
                .exfil
                .as_ref()
                .is_some_and(|e| injs.iter().any(|i| e.covers(&i.hop, t)));
            self.request(&entry.service, &entry.route, &injs, t);
            self.force_keep = keep;
            if (t / (3600 * SEC)) != ((t + (SEC as f64 / load) as i64) / (3600 * SEC)) {
                let mut injs: Vec<Inject> =
                    topo.job.hops.iter().map(|h| inject(h.clone())).collect();
                if self.job_adds_step {
                    injs.push(inject(topo.job_new_step.clone()));
                }
                self.request(&topo.job.service, &topo.job.route, &injs, t + 1);
            }
            n += 1;
            t += (SEC as f64 / load * self.rng.random_range(0.5..1.5)) as i64;
        }
    }
}

/// gRPC status for an HTTP status (as Envoy maps them).
fn grpc_code(status: u32) -> i64 {
    match status {
        200 => 0,
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}
