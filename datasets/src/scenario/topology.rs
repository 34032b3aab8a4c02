//! Request trees: which services one entry request walks through, per topology.
//!
//! * [`boutique`] — Google Online Boutique (the call structure of the Nezha traces).
//! * [`super::trainticket::trainticket`] — the TrainTicket benchmark (41 services).
//! * [`super::large::large`] — trees walked over the 1,238-service Jaeger graph.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A service or route name: static for hand-written topologies, owned when loaded.
pub(crate) type Name = Cow<'static, str>;

/// Which mesh the traffic runs in (`--topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TopologyKind {
    /// Online Boutique: 11 services (+ redis), gRPC.
    #[default]
    Boutique,
    /// TrainTicket: 41 services + their databases, REST with path parameters.
    Trainticket,
    /// The 1,238-service / 4,271-edge Jaeger UI sample dependency graph.
    Large,
}

impl TopologyKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "boutique" | "online-boutique" => Some(Self::Boutique),
            "trainticket" | "train-ticket" => Some(Self::Trainticket),
            "large" => Some(Self::Large),
            _ => None,
        }
    }
}

/// One hop of a request tree: caller → callee, port, method, path (a route template for
/// HTTP: `{param}` segments are filled with concrete values when emitted).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hop {
    pub caller: Name,
    pub callee: Name,
    pub port: u16,
    pub method: Name,
    pub path: Name,
    /// `Some(db.system)` for a database call: a CLIENT span only (no server side), the
    /// method is the operation and the path the collection/key.
    pub db: Option<&'static str>,
}

pub(crate) const fn grpc(
    caller: &'static str,
    callee: &'static str,
    port: u16,
    path: &'static str,
) -> Hop {
    h(caller, callee, port, "POST", path)
}

pub(crate) const fn h(
    caller: &'static str,
    callee: &'static str,
    port: u16,
    method: &'static str,
    path: &'static str,
) -> Hop {
    Hop {
        caller: Cow::Borrowed(caller),
        callee: Cow::Borrowed(callee),
        port,
        method: Cow::Borrowed(method),
        path: Cow::Borrowed(path),
        db: None,
    }
}

pub(crate) const fn db(
    caller: &'static str,
    callee: &'static str,
    system: &'static str,
    port: u16,
    op: &'static str,
    collection: &'static str,
) -> Hop {
    Hop {
        caller: Cow::Borrowed(caller),
        callee: Cow::Borrowed(callee),
        port,
        method: Cow::Borrowed(op),
        path: Cow::Borrowed(collection),
        db: Some(system),
    }
}

/// `/package.Service/Method` called with POST: a gRPC call.
pub(crate) fn is_grpc(method: &str, path: &str) -> bool {
    method == "POST"
        && path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(svc, m)| svc.contains('.') && !m.is_empty() && !m.contains('/'))
}

/// One entry route: the service whose SERVER span is the trace root, its route
/// (`METHOD /path`), and the hops under it in order (each hangs under the caller's
/// latest server span).
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub service: Name,
    pub route: Name,
    pub hops: Vec<Hop>,
}

impl Entry {
    pub fn new(service: &'static str, route: &'static str, hops: &[Hop]) -> Self {
        Self {
            service: Cow::Borrowed(service),
            route: Cow::Borrowed(route),
            hops: hops.to_vec(),
        }
    }
}

/// What the attack scenarios inject on a non-boutique topology (the boutique keeps its
/// hand-written injections in `attacks.rs`).
#[derive(Clone, Debug)]
pub(crate) struct AttackPlan {
    /// The workload the attacker controls.
    pub compromised: Name,
    /// compromised → a service it never calls, on a sensitive route.
    pub admin: Hop,
    /// Services compromised never calls: (service, port).
    pub fan_out: Vec<(Name, u16)>,
    /// Target of probing and its real route (the successful call after the probes).
    pub probe_success: Hop,
    /// compromised → a service it never calls on a real route (plaintext, identity spoof).
    pub lateral: Hop,
    /// Whose SPIFFE id the compromised workload presents in identity-spoof (a real
    /// caller of `lateral.callee`).
    pub spoof_as: Name,
    /// Two new edges A → B, then B → C.
    pub multi_hop: (Hop, Hop),
    /// A known edge on a route never seen on it, inside an entry (service, route) that
    /// uses the edge; the known hops leading from the entry to the caller come first.
    pub new_endpoint: (Name, Name, Vec<Hop>, Hop),
    /// An entry whose first hop is kept, plus two known edges from another entry's tree
    /// that never occur under this entry.
    pub context: Option<(Name, Name, Vec<Hop>)>,
    /// A known database edge read in bulk, inside this route of its caller.
    pub bulk_read: Option<(Name, Hop)>,
}

/// A mesh: namespace, entry routes, a rare route, the hourly job.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    /// `ScenarioMeta::topology`.
    pub name: String,
    pub namespace: Name,
    pub entries: Vec<Entry>,
    /// Rare but known: seen a few times during learning, replayed in `benign-rare-path`.
    pub rare: Entry,
    /// Hourly job in the learning phase too (so it is known).
    pub job: Entry,
    /// What the job's next release also calls (benign-jobs).
    pub job_new_step: Hop,
    /// The root span's URL keeps the route template (the boutique's historical output);
    /// otherwise the path parameters are filled in like on every hop.
    pub literal_entry_urls: bool,
    /// `None` for the boutique (hand-written injections).
    pub plan: Option<AttackPlan>,
}

impl Topology {
    /// Every distinct (caller, callee) pair of the request trees, rare route and job.
    #[cfg(test)]
    pub fn edges(&self) -> std::collections::BTreeSet<(String, String)> {
        self.entries
            .iter()
            .chain([&self.rare, &self.job])
            .flat_map(|e| e.hops.iter())
            .map(|h| (h.caller.to_string(), h.callee.to_string()))
            .collect()
    }
}

/// Online Boutique request trees per entry route (call structure as in the Nezha traces).
const BOUTIQUE: &[(&str, &[Hop])] = &[
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
            db("cartservice", "redis-cart", "redis", 6379, "HGET", "cart"),
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
            db("cartservice", "redis-cart", "redis", 6379, "HGET", "cart"),
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

/// Online Boutique in namespace `boutique`: entry service `frontend`, the rare
/// `POST /setCurrency`, the hourly `catalog-reindex` job.
pub(crate) fn boutique() -> Topology {
    Topology {
        name: "online-boutique".into(),
        namespace: Cow::Borrowed("boutique"),
        entries: BOUTIQUE
            .iter()
            .map(|(route, hops)| Entry::new("frontend", route, hops))
            .collect(),
        rare: Entry::new(
            "frontend",
            "POST /setCurrency",
            &[grpc(
                "frontend",
                "currencyservice",
                7000,
                "/hipstershop.CurrencyService/GetSupportedCurrencies",
            )],
        ),
        job: Entry::new(
            "catalog-reindex",
            "POST /jobs/reindex",
            &[grpc(
                "catalog-reindex",
                "productcatalogservice",
                3550,
                "/hipstershop.ProductCatalogService/ListProducts",
            )],
        ),
        // A new edge from a source with a short, low-volume history, where novelty is
        // expected.
        job_new_step: grpc(
            "catalog-reindex",
            "currencyservice",
            7000,
            "/hipstershop.CurrencyService/GetSupportedCurrencies",
        ),
        literal_entry_urls: true,
        plan: None,
    }
}

/// Fills `{param}` segments of a route template with `value(name)`.
pub(crate) fn fill_params(template: &str, mut value: impl FnMut(&str) -> String) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push_str(&value(&rest[open + 1..open + close]));
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_grpc_paths_are_recognised() {
        assert_eq!(
            fill_params("/api/v1/orderservice/order/{orderId}/x/{n}", |p| p
                .len()
                .to_string()),
            "/api/v1/orderservice/order/7/x/1"
        );
        assert_eq!(fill_params("/plain", |_| unreachable!()), "/plain");
        assert!(is_grpc("POST", "/hipstershop.CartService/GetCart"));
        assert!(!is_grpc("GET", "/hipstershop.CartService/GetCart"));
        assert!(!is_grpc("POST", "/api/v1/users/login"));
        assert_eq!(
            TopologyKind::parse("trainticket"),
            Some(TopologyKind::Trainticket)
        );
    }
}
