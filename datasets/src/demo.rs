//! Built-in traffic for `eastwest demo`: Online Boutique request trees as plain OTel SDK
//! spans on compressed event time, then a compromised `recommendationservice`.
//!
//! Event-time layout (relative to `now`, so the dashboard shows recent times):
//! learning traffic from now − 25 min for [`DEMO_LEARNING_PERIOD`] (a request every
//! 500 ms of event time), then normal traffic plus the attack from now − 4 min: an
//! admin endpoint on `cartservice`, cloud-metadata access, a fan-out to services it never
//! called, and a hop `cartservice → paymentservice` that chains into a path.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::otlp::kv;

/// The learning period `demo` gives `serve`.
pub const DEMO_LEARNING_PERIOD: Duration = Duration::from_secs(20 * 60);
const REQUESTS_PER_EXPORT: usize = 50;
const MS: i64 = 1_000_000;

pub struct DemoFeed {
    pub learning: Vec<ExportTraceServiceRequest>,
    pub attack: Vec<ExportTraceServiceRequest>,
}

/// One hop: `(caller, callee or "" for an uninstrumented peer, protocol attributes)`.
#[derive(Clone, Copy)]
enum Hop {
    Grpc(&'static str, &'static str, &'static str, &'static str),
    Http(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ),
    Db(&'static str, &'static str, &'static str, &'static str),
}

const HOME: &[Hop] = &[
    Hop::Grpc(
        "frontend",
        "productcatalogservice",
        "hipstershop.ProductCatalogService",
        "ListProducts",
    ),
    Hop::Grpc(
        "frontend",
        "currencyservice",
        "hipstershop.CurrencyService",
        "GetSupportedCurrencies",
    ),
    Hop::Grpc("frontend", "adservice", "hipstershop.AdService", "GetAds"),
];
const PRODUCT: &[Hop] = &[
    Hop::Grpc(
        "frontend",
        "productcatalogservice",
        "hipstershop.ProductCatalogService",
        "GetProduct",
    ),
    Hop::Grpc(
        "frontend",
        "recommendationservice",
        "hipstershop.RecommendationService",
        "ListRecommendations",
    ),
    Hop::Grpc(
        "recommendationservice",
        "productcatalogservice",
        "hipstershop.ProductCatalogService",
        "ListProducts",
    ),
    Hop::Grpc(
        "frontend",
        "currencyservice",
        "hipstershop.CurrencyService",
        "Convert",
    ),
];
const CART: &[Hop] = &[
    Hop::Grpc(
        "frontend",
        "cartservice",
        "hipstershop.CartService",
        "GetCart",
    ),
    Hop::Db("cartservice", "redis", "HGET", "cart"),
    Hop::Grpc(
        "frontend",
        "shippingservice",
        "hipstershop.ShippingService",
        "GetQuote",
    ),
    Hop::Grpc(
        "frontend",
        "currencyservice",
        "hipstershop.CurrencyService",
        "Convert",
    ),
];
const CHECKOUT: &[Hop] = &[
    Hop::Grpc(
        "frontend",
        "checkoutservice",
        "hipstershop.CheckoutService",
        "PlaceOrder",
    ),
    Hop::Grpc(
        "checkoutservice",
        "cartservice",
        "hipstershop.CartService",
        "GetCart",
    ),
    Hop::Db("cartservice", "redis", "HGET", "cart"),
    Hop::Grpc(
        "checkoutservice",
        "paymentservice",
        "hipstershop.PaymentService",
        "Charge",
    ),
    Hop::Grpc(
        "checkoutservice",
        "shippingservice",
        "hipstershop.ShippingService",
        "ShipOrder",
    ),
    Hop::Grpc(
        "checkoutservice",
        "emailservice",
        "hipstershop.EmailService",
        "SendOrderConfirmation",
    ),
    Hop::Grpc(
        "checkoutservice",
        "cartservice",
        "hipstershop.CartService",
        "EmptyCart",
    ),
];
const ENTRIES: &[(&str, &str, &[Hop])] = &[
    ("GET", "/", HOME),
    ("GET", "/product/{id}", PRODUCT),
    ("GET", "/cart", CART),
    ("POST", "/cart/checkout", CHECKOUT),
];

const ATTACK: &[Hop] = &[
    Hop::Http(
        "recommendationservice",
        "cartservice",
        "GET",
        "/admin/dump",
        "cartservice:7070",
    ),
    Hop::Http(
        "recommendationservice",
        "",
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        "169.254.169.254:80",
    ),
    Hop::Http(
        "recommendationservice",
        "emailservice",
        "GET",
        "/healthz",
        "emailservice:8080",
    ),
    Hop::Http(
        "recommendationservice",
        "shippingservice",
        "GET",
        "/healthz",
        "shippingservice:50051",
    ),
    Hop::Http(
        "recommendationservice",
        "paymentservice",
        "GET",
        "/healthz",
        "paymentservice:50051",
    ),
    Hop::Http(
        "recommendationservice",
        "checkoutservice",
        "GET",
        "/healthz",
        "checkoutservice:5050",
    ),
    Hop::Http(
        "cartservice",
        "paymentservice",
        "POST",
        "/charge",
        "paymentservice:50051",
    ),
];

struct TraceBuilder<'r> {
    rng: &'r mut StdRng,
    spans: Vec<(String, Span)>,
    trace_id: Vec<u8>,
}

impl TraceBuilder<'_> {
    fn id(&mut self) -> Vec<u8> {
        (0..8).map(|_| self.rng.random::<u8>()).collect()
    }

    fn span(
        &mut self,
        service: &str,
        kind: SpanKind,
        parent: &[u8],
        t: i64,
        name: &str,
        attrs: Vec<KeyValue>,
    ) -> Vec<u8> {
        let span_id = self.id();
        self.spans.push((
            service.to_string(),
            Span {
                trace_id: self.trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: parent.to_vec(),
                name: name.into(),
                kind: kind as i32,
                start_time_unix_nano: t as u64,
                end_time_unix_nano: (t + 3 * MS) as u64,
                attributes: attrs,
                ..Default::default()
            },
        ));
        span_id
    }

    /// Root server span of `root` plus every hop (a hop's caller span hangs under the
    /// caller's server span).
    fn request(&mut self, root: &str, method: &str, route: &str, hops: &[Hop], t: i64) {
        let http = |m: &str, r: &str| {
            vec![
                kv("http.request.method", m),
                kv("http.route", r),
                kv("url.path", r),
            ]
        };
        let root_id = self.span(
            root,
            SpanKind::Server,
            &[],
            t,
            &format!("{method} {route}"),
            http(method, route),
        );
        let mut servers: Vec<(String, Vec<u8>)> = vec![(root.to_string(), root_id)];
        for (i, hop) in hops.iter().enumerate() {
            let at = t + (i as i64 + 1) * MS;
            let (caller, callee) = match hop {
                Hop::Grpc(a, b, ..) | Hop::Http(a, b, ..) | Hop::Db(a, b, ..) => (*a, *b),
            };
            let parent = servers
                .iter()
                .rev()
                .find(|(s, _)| s == caller)
                .map(|(_, id)| id.clone())
                .unwrap_or_default();
            match *hop {
                Hop::Grpc(_, _, service, rpc) => {
                    let attrs = vec![
                        kv("rpc.system", "grpc"),
                        kv("rpc.service", service),
                        kv("rpc.method", rpc),
                        kv("server.address", callee),
                    ];
                    let client = self.span(
                        caller,
                        SpanKind::Client,
                        &parent,
                        at,
                        &format!("{service}/{rpc}"),
                        attrs.clone(),
                    );
                    let server = self.span(
                        callee,
                        SpanKind::Server,
                        &client,
                        at + MS / 2,
                        &format!("{service}/{rpc}"),
                        attrs,
                    );
                    servers.push((callee.to_string(), server));
                }
                Hop::Http(_, _, m, path, address) => {
                    let (host, port) = address.split_once(':').unwrap_or((address, "80"));
                    let mut attrs = http(m, path);
                    attrs.push(kv("server.address", host));
                    attrs.push(KeyValue {
                        key: "server.port".into(),
                        value: Some(AnyValue {
                            value: Some(Value::IntValue(port.parse().unwrap_or(80))),
                        }),
                        ..Default::default()
                    });
                    attrs.push(kv("url.full", &format!("http://{address}{path}")));
                    let client = self.span(
                        caller,
                        SpanKind::Client,
                        &parent,
                        at,
                        &format!("{m} {path}"),
                        attrs.clone(),
                    );
                    if !callee.is_empty() {
                        let server = self.span(
                            callee,
                            SpanKind::Server,
                            &client,
                            at + MS / 2,
                            &format!("{m} {path}"),
                            http(m, path),
                        );
                        servers.push((callee.to_string(), server));
                    }
                }
                Hop::Db(_, system, op, table) => {
                    let attrs = vec![
                        kv("db.system", system),
                        kv("db.operation", op),
                        kv("db.sql.table", table),
                        kv("server.address", "redis-cart"),
                    ];
                    self.span(caller, SpanKind::Client, &parent, at, op, attrs);
                }
            }
        }
    }
}

fn export(spans: Vec<(String, Span)>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: spans
            .into_iter()
            .map(|(service, span)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", &service),
                        kv("service.namespace", "boutique"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn normal_traffic(
    rng: &mut StdRng,
    from_ns: i64,
    until_ns: i64,
    step_ns: i64,
) -> Vec<ExportTraceServiceRequest> {
    let mut exports = Vec::new();
    let mut batch = Vec::new();
    let mut t = from_ns;
    let mut n = 0;
    while t < until_ns {
        let (method, route, hops) = ENTRIES[rng.random_range(0..ENTRIES.len())];
        let trace_id: Vec<u8> = (0..16).map(|_| rng.random::<u8>()).collect();
        let mut b = TraceBuilder {
            rng,
            spans: Vec::new(),
            trace_id,
        };
        b.request("frontend", method, route, hops, t);
        batch.extend(b.spans);
        n += 1;
        if n % REQUESTS_PER_EXPORT == 0 {
            exports.push(export(std::mem::take(&mut batch)));
        }
        t += step_ns;
    }
    if !batch.is_empty() {
        exports.push(export(batch));
    }
    exports
}

/// The demo traffic relative to the current wall clock, deterministic for a seed.
pub fn demo_feed(seed: u64) -> DemoFeed {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    demo_feed_at(seed, now)
}

/// The demo traffic relative to `now_ns`.
pub fn demo_feed_at(seed: u64, now_ns: i64) -> DemoFeed {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = now_ns - 25 * 60 * 1_000_000_000;
    let learning_end = start + DEMO_LEARNING_PERIOD.as_nanos() as i64;
    let learning = normal_traffic(&mut rng, start, learning_end, 500 * MS);
    let attack_start = now_ns - 4 * 60 * 1_000_000_000;
    let mut attack = normal_traffic(&mut rng, learning_end, attack_start, 500 * MS);
    for (i, hop) in ATTACK.iter().enumerate() {
        let t = attack_start + i as i64 * 10_000 * MS;
        let trace_id: Vec<u8> = (0..16).map(|_| rng.random::<u8>()).collect();
        let mut b = TraceBuilder {
            rng: &mut rng,
            spans: Vec::new(),
            trace_id,
        };
        let root = match hop {
            Hop::Http(a, ..) => *a,
            _ => "recommendationservice",
        };
        b.request(
            root,
            "POST",
            "/hipstershop.RecommendationService/ListRecommendations",
            &[*hop],
            t,
        );
        attack.push(export(b.spans));
    }
    DemoFeed { learning, attack }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_is_deterministic_and_has_learning_then_attack() {
        let a = demo_feed_at(7, 1_800_000_000_000_000_000);
        let b = demo_feed_at(7, 1_800_000_000_000_000_000);
        assert_eq!(a.learning, b.learning);
        assert_eq!(a.attack, b.attack);
        let spans =
            |r: &[ExportTraceServiceRequest]| r.iter().flat_map(|e| &e.resource_spans).count();
        assert!(spans(&a.learning) > 10_000, "{}", spans(&a.learning));
        let last_learning = a
            .learning
            .iter()
            .flat_map(|e| &e.resource_spans)
            .flat_map(|r| &r.scope_spans[0].spans)
            .map(|s| s.start_time_unix_nano)
            .max()
            .unwrap();
        let first_attack =
            a.attack.last().unwrap().resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano;
        assert!(first_attack > last_learning);
    }
}
