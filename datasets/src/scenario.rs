//! Labelled scenarios: Online Boutique traffic as Istio sidecar spans (learning phase),
//! then an injected attack or benign change, with `labels.jsonl` and `scenario.json`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eastwest_model::{AlertKind, Label};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::DatasetError;
use crate::otlp::{export, kv, kv_int};

pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_LEARNING: Duration = Duration::from_secs(2 * 3600);
pub const DEFAULT_ATTACK: Duration = Duration::from_secs(3600);
pub const DEFAULT_RATE_PER_SEC: f64 = 1.0;
/// 2026-01-05T00:00:00Z: fixed so that output bytes depend only on the seed.
pub const DEFAULT_START_NS: i64 = 1_767_571_200_000_000_000;
const NS: &str = "boutique";
const REQUESTS_PER_EXPORT: usize = 100;
const SEC: i64 = 1_000_000_000;

const SCENARIOS: &[&str] = &[
    "admin-endpoint",
    "fan-out",
    "probing",
    "context-anomaly",
    "new-endpoint",
    "plaintext",
    "identity-spoof",
    "multi-hop",
    "cloud-metadata",
    "bulk-read",
    "benign-rollout",
    "benign-surge",
    "benign-new-pods",
    "benign-rare-path",
    "benign-jobs",
];

pub fn scenario_names() -> &'static [&'static str] {
    SCENARIOS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// `traces.pb`: length-delimited sequence of `ExportTraceServiceRequest`s.
    #[default]
    Pb,
    /// `traces.json`: OTLP/HTTP JSON, one request per line.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenOptions {
    pub seed: u64,
    #[serde(with = "humantime_serde")]
    pub learning: Duration,
    #[serde(with = "humantime_serde")]
    pub attack: Duration,
    /// Entry requests per second of event time (before the diurnal factor).
    pub rate_per_sec: f64,
    pub start_ns: i64,
    pub format: FileFormat,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            learning: DEFAULT_LEARNING,
            attack: DEFAULT_ATTACK,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            start_ns: DEFAULT_START_NS,
            format: FileFormat::Pb,
        }
    }
}

impl GenOptions {
    pub fn validate(&self) -> Result<(), DatasetError> {
        if !(self.rate_per_sec > 0.0 && self.rate_per_sec <= 10_000.0) {
            return Err(DatasetError::InvalidOptions(
                "rate_per_sec must be in (0, 10000]".into(),
            ));
        }
        if self.learning < Duration::from_secs(60) || self.attack < Duration::from_secs(60) {
            return Err(DatasetError::InvalidOptions(
                "learning and attack must be at least 1m".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioMeta {
    pub name: String,
    pub seed: u64,
    pub topology: String,
    pub format: FileFormat,
    /// Learning period to give the detector, e.g. `2h`.
    pub learning_period: String,
    pub learning_start: DateTime<Utc>,
    pub attack_start: DateTime<Utc>,
    pub attack_end: DateTime<Utc>,
    pub traces: u64,
    pub spans: u64,
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenSummary {
    pub meta: ScenarioMeta,
    pub labels: usize,
}

/// One hop of a request tree: caller → callee, port, method, path/route.
#[derive(Clone, Copy)]
struct Hop {
    caller: &'static str,
    callee: &'static str,
    port: u16,
    method: &'static str,
    path: &'static str,
}

const fn grpc(caller: &'static str, callee: &'static str, port: u16, path: &'static str) -> Hop {
    Hop {
        caller,
        callee,
        port,
        method: "POST",
        path,
    }
}

/// Online Boutique request trees per entry route (call structure as in the Nezha traces).
const ENTRIES: &[(&str, &[Hop])] = &[
    (
        "GET /",
        &[
            grpc(
                "frontend",
                "currencyservice",
                7000,
                "/hipstershop.CurrencyService/GetSupportedCurrencies",
            ),
            grpc(
                "frontend",
                "productcatalogservice",
                3550,
                "/hipstershop.ProductCatalogService/ListProducts",
            ),
            grpc(
                "frontend",
                "cartservice",
                7070,
                "/hipstershop.CartService/GetCart",
            ),
            grpc(
                "frontend",
                "adservice",
                9555,
                "/hipstershop.AdService/GetAds",
            ),
        ],
    ),
    (
        "GET /product/{id}",
        &[
            grpc(
                "frontend",
                "productcatalogservice",
                3550,
                "/hipstershop.ProductCatalogService/GetProduct",
            ),
            grpc(
                "frontend",
                "recommendationservice",
                8080,
                "/hipstershop.RecommendationService/ListRecommendations",
            ),
            grpc(
                "recommendationservice",
                "productcatalogservice",
                3550,
                "/hipstershop.ProductCatalogService/ListProducts",
            ),
            grpc(
                "frontend",
                "currencyservice",
                7000,
                "/hipstershop.CurrencyService/Convert",
            ),
        ],
    ),
    (
        "GET /cart",
        &[
            grpc(
                "frontend",
                "cartservice",
                7070,
                "/hipstershop.CartService/GetCart",
            ),
            Hop {
                caller: "cartservice",
                callee: "redis-cart",
                port: 6379,
                method: "HGET",
                path: "cart",
            },
            grpc(
                "frontend",
                "shippingservice",
                50051,
                "/hipstershop.ShippingService/GetQuote",
            ),
        ],
    ),
    (
        "POST /cart/checkout",
        &[
            grpc(
                "frontend",
                "checkoutservice",
                5050,
                "/hipstershop.CheckoutService/PlaceOrder",
            ),
            grpc(
                "checkoutservice",
                "cartservice",
                7070,
                "/hipstershop.CartService/GetCart",
            ),
            Hop {
                caller: "cartservice",
                callee: "redis-cart",
                port: 6379,
                method: "HGET",
                path: "cart",
            },
            grpc(
                "checkoutservice",
                "productcatalogservice",
                3550,
                "/hipstershop.ProductCatalogService/GetProduct",
            ),
            grpc(
                "checkoutservice",
                "currencyservice",
                7000,
                "/hipstershop.CurrencyService/Convert",
            ),
            grpc(
                "checkoutservice",
                "shippingservice",
                50051,
                "/hipstershop.ShippingService/GetQuote",
            ),
            grpc(
                "checkoutservice",
                "paymentservice",
                50051,
                "/hipstershop.PaymentService/Charge",
            ),
            grpc(
                "checkoutservice",
                "shippingservice",
                50051,
                "/hipstershop.ShippingService/ShipOrder",
            ),
            grpc(
                "checkoutservice",
                "cartservice",
                7070,
                "/hipstershop.CartService/EmptyCart",
            ),
            grpc(
                "checkoutservice",
                "emailservice",
                8080,
                "/hipstershop.EmailService/SendOrderConfirmation",
            ),
        ],
    ),
];
/// Rare but known: seen a few times during learning, replayed in `benign-rare-path`.
const RARE: (&str, &[Hop]) = (
    "POST /setCurrency",
    &[grpc(
        "frontend",
        "currencyservice",
        7000,
        "/hipstershop.CurrencyService/GetSupportedCurrencies",
    )],
);
/// Hourly job in the learning phase too (so it is known).
const JOB: (&str, &[Hop]) = (
    "POST /jobs/reindex",
    &[grpc(
        "catalog-reindex",
        "productcatalogservice",
        3550,
        "/hipstershop.ProductCatalogService/ListProducts",
    )],
);
/// What the job's next release also calls: a new edge from a source with a short,
/// low-volume history, where novelty is expected (benign-jobs).
const JOB_NEW_STEP: Hop = grpc(
    "catalog-reindex",
    "currencyservice",
    7000,
    "/hipstershop.CurrencyService/GetSupportedCurrencies",
);

/// How one injected call deviates from mesh normal.
#[derive(Clone)]
struct Inject {
    hop: Hop,
    /// Entry service/route of the trace (the caller itself when it acts on its own).
    entry: Option<(&'static str, &'static str)>,
    status: u32,
    mtls: bool,
    /// Principal the caller presents (identity spoof presents another service's).
    principal_of: Option<&'static str>,
    /// `None` for an uninstrumented destination (no server span).
    instrumented: bool,
}

fn inject(hop: Hop) -> Inject {
    Inject {
        hop,
        entry: None,
        status: 200,
        mtls: true,
        principal_of: None,
        instrumented: true,
    }
}

fn h(
    caller: &'static str,
    callee: &'static str,
    port: u16,
    method: &'static str,
    path: &'static str,
) -> Hop {
    Hop {
        caller,
        callee,
        port,
        method,
        path,
    }
}

pub(crate) struct Gen {
    rng: StdRng,
    spans: Vec<(Vec<KeyValue>, Span)>,
    out: Vec<ExportTraceServiceRequest>,
    requests_in_batch: usize,
    pub(crate) traces: u64,
    pub(crate) span_count: u64,
    /// Version label and pod-name suffix in use (rollouts and new pods change them).
    version: &'static str,
    pod_generation: u32,
    /// The hourly job's new release adds a pricing step (benign-jobs).
    job_adds_step: bool,
}

impl Gen {
    fn id(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.rng.random::<u8>()).collect()
    }

    fn resource(&mut self, service: &str) -> Vec<KeyValue> {
        let replica = self.pod_generation * 16 + self.rng.random_range(0..3u32);
        let pod = format!("{service}-{}-{replica:05x}", self.version.replace('.', ""));
        // The pod IP is a function of the pod so that a pod keeps one resource.
        let ip_seed = pod
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        vec![
            kv("service.name", &format!("{service}.{NS}")),
            kv("istio.canonical_service", service),
            kv("istio.namespace", NS),
            kv("istio.canonical_revision", self.version),
            kv(
                "node_id",
                &format!(
                    "sidecar~10.0.{}.{}~{pod}.{NS}~{NS}.svc.cluster.local",
                    ip_seed % 4,
                    2 + ip_seed % 248
                ),
            ),
            kv("k8s.pod.name", &pod),
        ]
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
    ) -> Vec<u8> {
        let id = self.id(8);
        let resource = self.resource(service);
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
                trace_state: "ot=th:0".into(),
                attributes: attrs,
                ..Default::default()
            },
        ));
        self.span_count += 1;
        id
    }

    fn principal(svc: &str) -> String {
        format!("spiffe://cluster.local/ns/{NS}/sa/{svc}")
    }

    /// Client + server span pair of one hop, Istio-sidecar style.
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
            path,
        } = inj.hop;
        let host = format!("{callee}.{NS}.svc.cluster.local");
        let db = port == 6379;
        let status = inj.status.to_string();
        let mut common = vec![
            kv("http.method", method),
            kv("http.url", &format!("http://{host}:{port}{path}")),
            kv("http.status_code", &status),
            kv("guid:x-request-id", request_id),
            kv("response_flags", "-"),
            kv(
                "peer.address",
                &format!("10.1.{}.{}:{port}", port % 200, port % 97),
            ),
        ];
        // Istio's access-log attribute: what the sidecars negotiated, stated explicitly so
        // a plaintext call is visible as such rather than as a missing identity.
        common.push(kv(
            "connection_security_policy",
            if inj.mtls { "mutual_tls" } else { "none" },
        ));
        if inj.mtls {
            let src = Self::principal(inj.principal_of.unwrap_or(caller));
            common.push(kv("source.principal", &src));
            common.push(kv("destination.principal", &Self::principal(callee)));
        }
        let mut client_attrs = common.clone();
        client_attrs.push(kv("upstream_cluster", &format!("outbound|{port}||{host}")));
        client_attrs.push(kv(
            "upstream_cluster.name",
            &format!("outbound|{port}||{host}"),
        ));
        if db {
            client_attrs = vec![
                kv("db.system", "redis"),
                kv("db.operation.name", method),
                kv("db.collection.name", path),
                kv("server.address", &format!("{callee}.{NS}")),
                kv_int("server.port", i64::from(port)),
            ];
        }
        let dur = self.rng.random_range(1_000_000..20_000_000i64);
        let name = format!("{host}:{port}{}", if db { "" } else { path });
        let client = self.span(
            caller,
            SpanKind::Client,
            trace,
            parent,
            t,
            dur,
            &name,
            client_attrs,
        );
        if db || !inj.instrumented {
            return client;
        }
        let mut server_attrs = common;
        server_attrs.push(kv("upstream_cluster", &format!("inbound|{port}||")));
        self.span(
            callee,
            SpanKind::Server,
            trace,
            &client,
            t + 200_000,
            dur - 400_000,
            &name,
            server_attrs,
        )
    }

    /// One request: root SERVER at the entry service, then every hop under the caller's
    /// latest server span.
    fn request(&mut self, entry_service: &str, route: &str, hops: &[Inject], t: i64) {
        let trace = self.id(16);
        let request_id = hex::encode(self.id(16));
        let (method, path) = route.split_once(' ').unwrap_or(("GET", route));
        let attrs = vec![
            kv("http.method", method),
            kv("http.url", &format!("http://{entry_service}.{NS}{path}")),
            kv("http.status_code", "200"),
            kv("guid:x-request-id", &request_id),
            kv("upstream_cluster", "inbound|8080||"),
        ];
        let root = self.span(
            entry_service,
            SpanKind::Server,
            &trace,
            &[],
            t,
            50_000_000,
            route,
            attrs,
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
            servers.push((inj.hop.callee, server));
        }
        self.traces += 1;
        self.requests_in_batch += 1;
        if self.requests_in_batch >= REQUESTS_PER_EXPORT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.spans.is_empty() {
            self.out.push(export(std::mem::take(&mut self.spans)));
        }
        self.requests_in_batch = 0;
    }

    fn normal(&mut self, from: i64, until: i64, rate: f64, rare_every: u64) {
        let mut t = from;
        let mut n = 0u64;
        while t < until {
            // Diurnal load: ±50 % over a 24 h sine.
            let hour = (t / SEC) as f64 / 3600.0;
            let load = rate * (1.0 + 0.5 * (hour / 24.0 * std::f64::consts::TAU).sin());
            let (route, hops) = if rare_every > 0 && n % rare_every == rare_every - 1 {
                RARE
            } else {
                ENTRIES[self.rng.random_range(0..ENTRIES.len())]
            };
            let mut injs: Vec<Inject> = hops.iter().map(|h| inject(*h)).collect();
            // Error rate ~1 % on the last hop.
            if self.rng.random_bool(0.01)
                && let Some(last) = injs.last_mut()
            {
                last.status = 503;
            }
            self.request("frontend", route, &injs, t);
            if (t / (3600 * SEC)) != ((t + (SEC as f64 / load) as i64) / (3600 * SEC)) {
                let mut injs: Vec<Inject> = JOB.1.iter().map(|h| inject(*h)).collect();
                if self.job_adds_step {
                    injs.push(inject(JOB_NEW_STEP));
                }
                self.request("catalog-reindex", JOB.0, &injs, t + 1);
            }
            n += 1;
            t += (SEC as f64 / load * self.rng.random_range(0.5..1.5)) as i64;
        }
    }
}

#[allow(clippy::too_many_arguments)] // the label's fields, in schema order
fn label(
    name: &str,
    kind: Option<AlertKind>,
    src: &str,
    dst: Option<&str>,
    method: Option<&str>,
    route: Option<&str>,
    start: i64,
    end: i64,
) -> Label {
    Label {
        scenario: name.into(),
        kind,
        source: format!("{src}.{NS}"),
        destination: dst.map(|d| format!("{d}.{NS}")),
        method: method.map(Into::into),
        route: route.map(Into::into),
        start: DateTime::from_timestamp_nanos(start),
        end: DateTime::from_timestamp_nanos(end),
        class: if kind.is_some() { "attack" } else { "benign" }.into(),
    }
}

/// Generates scenario `name` into `out` (created if missing).
pub fn generate(name: &str, opts: &GenOptions, out: &Path) -> Result<GenSummary, DatasetError> {
    opts.validate()?;
    if !SCENARIOS.contains(&name) {
        return Err(DatasetError::UnknownScenario(name.into()));
    }
    let (reqs, labels, meta) = build(name, opts);
    std::fs::create_dir_all(out).map_err(|e| DatasetError::io(out, e))?;
    write_traces(out, opts.format, &reqs)?;
    let mut lines = String::new();
    for l in &labels {
        lines.push_str(&serde_json::to_string(l).expect("label serialises"));
        lines.push('\n');
    }
    let lp = out.join("labels.jsonl");
    std::fs::write(&lp, lines).map_err(|e| DatasetError::io(&lp, e))?;
    let mp = out.join("scenario.json");
    std::fs::write(
        &mp,
        serde_json::to_string_pretty(&meta).expect("meta serialises"),
    )
    .map_err(|e| DatasetError::io(&mp, e))?;
    Ok(GenSummary {
        meta,
        labels: labels.len(),
    })
}

pub(crate) fn write_traces(
    out: &Path,
    format: FileFormat,
    reqs: &[ExportTraceServiceRequest],
) -> Result<(), DatasetError> {
    let (path, bytes) = match format {
        FileFormat::Pb => {
            let mut buf = Vec::new();
            for r in reqs {
                r.encode_length_delimited(&mut buf).expect("vec grows");
            }
            (out.join("traces.pb"), buf)
        }
        FileFormat::Json => {
            let mut buf = Vec::new();
            for r in reqs {
                serde_json::to_writer(&mut buf, r).map_err(|e| DatasetError::BadFile {
                    path: out.into(),
                    detail: e.to_string(),
                })?;
                buf.write_all(b"\n").expect("vec grows");
            }
            (out.join("traces.json"), buf)
        }
    };
    std::fs::write(&path, bytes).map_err(|e| DatasetError::io(&path, e))
}

pub(crate) fn build(
    name: &str,
    opts: &GenOptions,
) -> (Vec<ExportTraceServiceRequest>, Vec<Label>, ScenarioMeta) {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(opts.seed),
        spans: Vec::new(),
        out: Vec::new(),
        requests_in_batch: 0,
        traces: 0,
        span_count: 0,
        version: "v1",
        pod_generation: 0,
        job_adds_step: false,
    };
    let start = opts.start_ns;
    let attack_start = start + opts.learning.as_nanos() as i64;
    let attack_end = attack_start + opts.attack.as_nanos() as i64;
    let rate = opts.rate_per_sec;
    g.normal(start, attack_start, rate, 500);
    let mut labels = Vec::new();
    let t0 = attack_start + 60 * SEC;
    let compromised = "recommendationservice";
    let own = |inj: Inject, t: i64, g: &mut Gen| {
        let route = format!("{} {}", inj.hop.method, inj.hop.path);
        let caller = inj.hop.caller;
        g.request(
            caller,
            &inj.entry.map(|e| e.1.to_string()).unwrap_or(route),
            &[inj],
            t,
        );
    };
    // Normal traffic continues through the attack window (surge scales it).
    let phase_rate = if name == "benign-surge" {
        rate * 5.0
    } else {
        rate
    };
    match name {
        "benign-rollout" => g.version = "v2",
        "benign-new-pods" => g.pod_generation = 7,
        "benign-jobs" => g.job_adds_step = true,
        _ => {}
    }
    g.normal(
        attack_start,
        attack_end,
        phase_rate,
        if name == "benign-rare-path" { 50 } else { 500 },
    );
    match name {
        "admin-endpoint" => {
            own(
                inject(h(compromised, "cartservice", 7070, "GET", "/admin/dump")),
                t0,
                &mut g,
            );
            labels.push(label(
                name,
                Some(AlertKind::SensitiveEndpoint),
                compromised,
                Some("cartservice"),
                Some("GET"),
                Some("/admin/dump"),
                t0,
                t0 + SEC,
            ));
        }
        "fan-out" => {
            let targets = [
                ("emailservice", 8080),
                ("shippingservice", 50051),
                ("paymentservice", 50051),
                ("checkoutservice", 5050),
                ("adservice", 9555),
                ("currencyservice", 7000),
            ];
            for (i, (svc, port)) in targets.iter().enumerate() {
                own(
                    inject(h(compromised, svc, *port, "GET", "/healthz")),
                    t0 + i as i64 * SEC,
                    &mut g,
                );
            }
            labels.push(label(
                name,
                Some(AlertKind::FanOut),
                compromised,
                None,
                None,
                None,
                t0,
                t0 + targets.len() as i64 * SEC,
            ));
        }
        "probing" => {
            for (i, path) in [
                "/admin",
                "/debug/pprof",
                "/internal/users",
                "/actuator/env",
                "/api/v1/secrets",
            ]
            .iter()
            .enumerate()
            {
                let mut inj = inject(h(compromised, "paymentservice", 50051, "GET", path));
                inj.status = if i % 2 == 0 { 404 } else { 403 };
                own(inj, t0 + i as i64 * 2 * SEC, &mut g);
            }
            own(
                inject(h(
                    compromised,
                    "paymentservice",
                    50051,
                    "POST",
                    "/hipstershop.PaymentService/Charge",
                )),
                t0 + 12 * SEC,
                &mut g,
            );
            labels.push(label(
                name,
                Some(AlertKind::Probing),
                compromised,
                Some("paymentservice"),
                None,
                None,
                t0,
                t0 + 13 * SEC,
            ));
        }
        "context-anomaly" => {
            // Known edge checkoutservice → paymentservice, but entered from /product/{id}.
            let hops = [
                inject(grpc(
                    "frontend",
                    "productcatalogservice",
                    3550,
                    "/hipstershop.ProductCatalogService/GetProduct",
                )),
                inject(grpc(
                    "frontend",
                    "checkoutservice",
                    5050,
                    "/hipstershop.CheckoutService/PlaceOrder",
                )),
                inject(grpc(
                    "checkoutservice",
                    "paymentservice",
                    50051,
                    "/hipstershop.PaymentService/Charge",
                )),
            ];
            for i in 0..3 {
                g.request("frontend", "GET /product/{id}", &hops, t0 + i * SEC);
            }
            // The same requests also reach checkout from a product page: one injection,
            // two anomalous hops, both legitimately reportable.
            labels.push(label(
                name,
                Some(AlertKind::ContextAnomaly),
                "frontend",
                Some("checkoutservice"),
                Some("POST"),
                Some("/hipstershop.CheckoutService/PlaceOrder"),
                t0,
                t0 + 3 * SEC,
            ));
            labels.push(label(
                name,
                Some(AlertKind::ContextAnomaly),
                "checkoutservice",
                Some("paymentservice"),
                Some("POST"),
                Some("/hipstershop.PaymentService/Charge"),
                t0,
                t0 + 3 * SEC,
            ));
        }
        "new-endpoint" => {
            let hops = [inject(h(
                "frontend",
                "cartservice",
                7070,
                "POST",
                "/hipstershop.CartService/ExportAllCarts",
            ))];
            g.request("frontend", "GET /cart", &hops, t0);
            labels.push(label(
                name,
                Some(AlertKind::NewEndpoint),
                "frontend",
                Some("cartservice"),
                Some("POST"),
                Some("/hipstershop.CartService/ExportAllCarts"),
                t0,
                t0 + SEC,
            ));
        }
        "plaintext" => {
            let mut inj = inject(grpc(
                compromised,
                "paymentservice",
                50051,
                "/hipstershop.PaymentService/Charge",
            ));
            inj.mtls = false;
            own(inj, t0, &mut g);
            labels.push(label(
                name,
                Some(AlertKind::Plaintext),
                compromised,
                Some("paymentservice"),
                Some("POST"),
                Some("/hipstershop.PaymentService/Charge"),
                t0,
                t0 + SEC,
            ));
        }
        "identity-spoof" => {
            let mut inj = inject(grpc(
                compromised,
                "paymentservice",
                50051,
                "/hipstershop.PaymentService/Charge",
            ));
            inj.principal_of = Some("checkoutservice");
            own(inj, t0, &mut g);
            labels.push(label(
                name,
                Some(AlertKind::IdentityMismatch),
                compromised,
                Some("paymentservice"),
                Some("POST"),
                Some("/hipstershop.PaymentService/Charge"),
                t0,
                t0 + SEC,
            ));
        }
        "multi-hop" => {
            // A → B, then 30 min later B → C: each a new edge, chained into a path.
            own(
                inject(h(
                    compromised,
                    "cartservice",
                    7070,
                    "POST",
                    "/hipstershop.CartService/GetCart",
                )),
                t0,
                &mut g,
            );
            let t1 = t0 + 30 * 60 * SEC;
            own(
                inject(h(
                    "cartservice",
                    "paymentservice",
                    50051,
                    "POST",
                    "/hipstershop.PaymentService/Charge",
                )),
                t1,
                &mut g,
            );
            labels.push(label(
                name,
                Some(AlertKind::NewEdge),
                compromised,
                Some("cartservice"),
                Some("POST"),
                Some("/hipstershop.CartService/GetCart"),
                t0,
                t0 + SEC,
            ));
            labels.push(label(
                name,
                Some(AlertKind::NewEdge),
                "cartservice",
                Some("paymentservice"),
                Some("POST"),
                Some("/hipstershop.PaymentService/Charge"),
                t1,
                t1 + SEC,
            ));
        }
        "cloud-metadata" => {
            let mut inj = inject(h(
                compromised,
                "169.254.169.254",
                80,
                "GET",
                "/latest/meta-data/iam/security-credentials/",
            ));
            inj.instrumented = false;
            inj.mtls = false;
            own(inj, t0, &mut g);
            labels.push(label(
                name,
                Some(AlertKind::SensitiveEndpoint),
                compromised,
                None,
                Some("GET"),
                Some("/latest/meta-data/iam/security-credentials/"),
                t0,
                t0 + SEC,
            ));
        }
        "bulk-read" => {
            for i in 0..600 {
                g.request(
                    "cartservice",
                    "POST /hipstershop.CartService/GetCart",
                    &[inject(Hop {
                        caller: "cartservice",
                        callee: "redis-cart",
                        port: 6379,
                        method: "HGETALL",
                        path: "cart",
                    })],
                    t0 + i * SEC / 10,
                );
            }
            labels.push(label(
                name,
                Some(AlertKind::RateSpike),
                "cartservice",
                Some("redis-cart"),
                Some("HGETALL"),
                Some("cart"),
                t0,
                t0 + 60 * SEC,
            ));
        }
        _ => labels.push(label(
            name,
            None,
            if name == "benign-jobs" {
                "catalog-reindex"
            } else {
                "frontend"
            },
            None,
            None,
            None,
            attack_start,
            attack_end,
        )),
    }
    g.flush();
    let meta = ScenarioMeta {
        name: name.into(),
        seed: opts.seed,
        topology: "online-boutique".into(),
        format: opts.format,
        learning_period: humantime::format_duration(opts.learning).to_string(),
        learning_start: DateTime::from_timestamp_nanos(start),
        attack_start: DateTime::from_timestamp_nanos(attack_start),
        attack_end: DateTime::from_timestamp_nanos(attack_end),
        traces: g.traces,
        spans: g.span_count,
        requests: g.out.len() as u64,
    };
    (g.out, labels, meta)
}
