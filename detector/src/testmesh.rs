//! A small deterministic mesh generator for tests, benches and the in-crate evaluation:
//! entries → request trees with jitter, a few normal 404s, a rare path and an hourly
//! job, then one injected attack or benign change per scenario, with labels. Not a
//! replacement for the datasets crate's scenario suite.

use chrono::DateTime;
use eastwest_model::{AlertKind, Call, Entry, Label, Protocol, Workload};

pub const SEC: i64 = 1_000_000_000;
/// 2026-01-05T00:00:00Z.
pub const START_NS: i64 = 1_767_571_200 * SEC;
pub const NAMESPACE: &str = "shop";
/// Learning period the scenarios are built for (see [`eval_config`]).
pub const LEARNING_SECS: i64 = 2 * 3600;
/// Detection traffic after learning.
pub const DETECT_SECS: i64 = 1800;
/// Attacks start this long after learning ends.
pub const ATTACK_OFFSET_SECS: i64 = 600;

pub const SCENARIOS: &[&str] = &[
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
    "route-overflow",
    "benign-surge",
    "benign-rollout",
    "benign-rare-path",
    "benign-jobs",
];

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub fn workload(service: &str) -> Workload {
    Workload::new(service)
        .in_namespace(NAMESPACE)
        .with_principal(format!(
            "spiffe://cluster.local/ns/{NAMESPACE}/sa/{service}"
        ))
}

#[allow(clippy::too_many_arguments)]
pub fn call(
    t: i64,
    src: &str,
    dst: &str,
    method: &str,
    route: &str,
    entry: (&str, &str),
    trace: u64,
    status: u32,
) -> Call {
    Call {
        event_time_ns: t,
        source: workload(src),
        destination: workload(dst),
        protocol: if dst == "db" || dst == "redis" {
            Protocol::Db
        } else {
            Protocol::Http
        },
        method: method.into(),
        route: route.into(),
        status: Some(status),
        error: status >= 500,
        duration_ns: 2_000_000,
        mtls: Some(true),
        trace_id: format!("{trace:032x}").into(),
        span_id: format!("{:016x}", trace ^ t as u64).into(),
        entry: Some(Entry {
            service: entry.0.into(),
            route: entry.1.into(),
        }),
        weight: 1.0,
        ..Default::default()
    }
}

const ENTRIES: &[&str] = &["GET /", "GET /cart", "POST /checkout", "GET /product/{id}"];

/// The calls of one request entering at `frontend` on `entry`.
pub fn request(rng: &mut Rng, t: i64, entry: &str, trace: u64) -> Vec<Call> {
    let e = ("frontend", entry);
    let (m, r) = entry.split_once(' ').unwrap_or(("GET", entry));
    let mut v = vec![call(t, "ingress", "frontend", m, r, e, trace, 200)];
    let mut at = t;
    let mut hop = |src: &str, dst: &str, m: &str, r: &str, status: u32| {
        at += 1_000_000;
        v.push(call(at, src, dst, m, r, e, trace, status));
    };
    match entry {
        "GET /" => {
            hop("frontend", "product", "GET", "/products", 200);
            hop("product", "db", "SELECT", "products", 200);
            hop("frontend", "recommendations", "GET", "/recs", 200);
            hop("recommendations", "product", "GET", "/products/{id}", 200);
            if rng.unit() < 0.002 {
                hop("frontend", "ads", "GET", "/ads", 200); // rare path
            }
        }
        "GET /cart" => {
            hop("frontend", "cart", "GET", "/cart/{id}", 200);
            hop("cart", "redis", "GET", "cart", 200);
        }
        "POST /checkout" => {
            hop("frontend", "checkout", "POST", "/checkout", 200);
            hop("checkout", "cart", "GET", "/cart/{id}", 200);
            hop("checkout", "users", "GET", "/users/{id}", 200);
            hop("checkout", "payment", "POST", "/charge", 200);
            hop("payment", "db", "INSERT", "payments", 200);
            hop("checkout", "shipping", "POST", "/quote", 200);
        }
        _ => {
            let status = if rng.unit() < 0.02 { 404 } else { 200 };
            hop("frontend", "product", "GET", "/products/{id}", status);
            if status == 200 {
                hop("product", "db", "SELECT", "products", 200);
            }
        }
    }
    v
}

/// Normal traffic over [start, start + secs) at `per_sec` requests per second (Poisson
/// arrivals), with an hourly report job; sorted by event time.
pub fn normal_traffic(
    rng: &mut Rng,
    start: i64,
    secs: i64,
    per_sec: f64,
    trace_base: u64,
) -> Vec<Call> {
    let mut calls = Vec::new();
    let end = start + secs * SEC;
    let mut t = start;
    let mut trace = trace_base;
    loop {
        t += (-(1.0 - rng.unit()).ln() / per_sec * 1e9) as i64;
        if t >= end {
            break;
        }
        trace += 1;
        let entry = ENTRIES[rng.below(ENTRIES.len() as u64) as usize];
        calls.extend(request(rng, t, entry, trace));
    }
    let mut job = start - start.rem_euclid(3600 * SEC) + 1800 * SEC;
    while job < end {
        if job >= start {
            trace += 1;
            calls.push(call(
                job,
                "reporter",
                "db",
                "SELECT",
                "orders",
                ("reporter", "cron report"),
                trace,
                200,
            ));
        }
        job += 3600 * SEC;
    }
    calls.sort_by_key(|c| c.event_time_ns);
    calls
}

fn label(
    scenario: &str,
    kind: Option<AlertKind>,
    src: &str,
    dst: Option<&str>,
    start: i64,
    end: i64,
) -> Label {
    let key = |s: &str| format!("{s}.{NAMESPACE}");
    Label {
        scenario: scenario.into(),
        kind,
        source: key(src),
        destination: dst.map(key),
        method: None,
        route: None,
        start: DateTime::from_timestamp_nanos(start),
        end: DateTime::from_timestamp_nanos(end),
        class: if kind.is_some() { "attack" } else { "benign" }.into(),
    }
}

/// Learning + detection traffic with `name` injected; event-time ordered calls and labels.
pub fn scenario(name: &str, seed: u64) -> (Vec<Call>, Vec<Label>) {
    let mut rng = Rng::new(seed);
    let secs = LEARNING_SECS + DETECT_SECS;
    let mut calls = normal_traffic(&mut rng, START_NS, secs, 2.0, 0);
    let a = START_NS + (LEARNING_SECS + ATTACK_OFFSET_SECS) * SEC;
    let mut trace = 1u64 << 40;
    let mut extra = Vec::new();
    let mut at = |i: i64, src: &str, dst: &str, m: &str, r: &str, status: u32| {
        trace += 1;
        call(
            a + i,
            src,
            dst,
            m,
            r,
            ("frontend", "GET /cart"),
            trace,
            status,
        )
    };
    use AlertKind::*;
    let labels = match name {
        "admin-endpoint" => {
            extra.extend((0..3).map(|i| {
                at(
                    i * 20 * SEC,
                    "cart",
                    "users",
                    "DELETE",
                    "/admin/users/{id}",
                    200,
                )
            }));
            vec![label(
                name,
                Some(SensitiveEndpoint),
                "cart",
                Some("users"),
                a,
                a + 60 * SEC,
            )]
        }
        "fan-out" => {
            let targets = [
                "users",
                "payment",
                "shipping",
                "checkout",
                "product",
                "recommendations",
                "ads",
                "db",
                "frontend",
                "reporter",
                "inventory",
                "auth",
            ];
            extra.extend(
                targets
                    .iter()
                    .enumerate()
                    .map(|(i, d)| at(i as i64 * 2 * SEC, "cart", d, "GET", "/", 200)),
            );
            vec![label(name, Some(FanOut), "cart", None, a, a + 30 * SEC)]
        }
        "probing" => {
            let paths = [
                "/admin",
                "/.env",
                "/api/v1/secrets",
                "/internal",
                "/config",
                "/backup",
                "/api/keys",
                "/users/export",
                "/debug/vars",
                "/swagger.json",
                "/graphql",
                "/console",
            ];
            for (i, p) in paths.iter().enumerate() {
                let dst = ["users", "payment", "product"][i % 3];
                extra.push(at(
                    i as i64 * SEC,
                    "cart",
                    dst,
                    "GET",
                    p,
                    if i % 2 == 0 { 404 } else { 403 },
                ));
            }
            vec![label(name, Some(Probing), "cart", None, a, a + 15 * SEC)]
        }
        "context-anomaly" => {
            for i in 0..3 {
                let mut c = at(i * 10 * SEC, "checkout", "payment", "POST", "/charge", 200);
                c.entry = Some(Entry {
                    service: "frontend".into(),
                    route: "GET /".into(),
                });
                extra.push(c);
            }
            vec![label(
                name,
                Some(ContextAnomaly),
                "checkout",
                Some("payment"),
                a,
                a + 30 * SEC,
            )]
        }
        "new-endpoint" => {
            extra.extend(
                (0..3).map(|i| at(i * 5 * SEC, "checkout", "payment", "POST", "/refunds", 200)),
            );
            vec![label(
                name,
                Some(NewEndpoint),
                "checkout",
                Some("payment"),
                a,
                a + 15 * SEC,
            )]
        }
        "plaintext" => {
            for i in 0..3 {
                let mut c = at(i * 5 * SEC, "checkout", "payment", "POST", "/charge", 200);
                c.mtls = Some(false);
                extra.push(c);
            }
            vec![label(
                name,
                Some(Plaintext),
                "checkout",
                Some("payment"),
                a,
                a + 15 * SEC,
            )]
        }
        "identity-spoof" => {
            for i in 0..3 {
                let mut c = at(i * 5 * SEC, "cart", "redis", "GET", "cart", 200);
                c.source.principal =
                    Some(format!("spiffe://cluster.local/ns/{NAMESPACE}/sa/payment").into());
                extra.push(c);
            }
            vec![label(
                name,
                Some(IdentityMismatch),
                "cart",
                Some("redis"),
                a,
                a + 15 * SEC,
            )]
        }
        "multi-hop" => {
            extra.push(at(0, "cart", "users", "GET", "/users/{id}", 200));
            extra.push(at(30 * SEC, "users", "db", "SELECT", "credentials", 200));
            vec![
                label(name, Some(NewEdge), "cart", Some("users"), a, a + 10 * SEC),
                label(
                    name,
                    Some(NewEdge),
                    "users",
                    Some("db"),
                    a + 30 * SEC,
                    a + 40 * SEC,
                ),
            ]
        }
        "cloud-metadata" => {
            let mut c = at(
                0,
                "recommendations",
                "169.254.169.254",
                "GET",
                "/latest/meta-data/iam/security-credentials",
                200,
            );
            c.destination = Workload::new("169.254.169.254").in_namespace(NAMESPACE);
            c.destination_address = Some("169.254.169.254:80".into());
            c.mtls = None;
            extra.push(c);
            vec![label(
                name,
                Some(SensitiveEndpoint),
                "recommendations",
                None,
                a,
                a + 10 * SEC,
            )]
        }
        "bulk-read" => {
            extra.extend(
                (0..400).map(|i| at(i * 100_000_000, "product", "db", "SELECT", "products", 200)),
            );
            vec![label(
                name,
                Some(RateSpike),
                "product",
                Some("db"),
                a,
                a + 60 * SEC,
            )]
        }
        "route-overflow" => {
            extra.extend((0..5).map(|i| {
                at(
                    i * SEC,
                    "frontend",
                    "cart",
                    "GET",
                    crate::OVERFLOW_ROUTE,
                    404,
                )
            }));
            vec![label(
                name,
                Some(NewEndpoint),
                "frontend",
                Some("cart"),
                a,
                a + 10 * SEC,
            )]
        }
        "benign-surge" => {
            // ×5 on every edge for 10 minutes.
            extra.extend(normal_traffic(&mut rng, a, 600, 8.0, 1 << 41));
            vec![label(name, None, "frontend", None, a, a + 600 * SEC)]
        }
        "benign-rollout" => {
            for c in calls
                .iter_mut()
                .filter(|c| c.event_time_ns >= a && c.source.service == "checkout")
            {
                c.source_version = Some("v2".into());
            }
            vec![label(name, None, "checkout", None, a, a + 600 * SEC)]
        }
        "benign-rare-path" => {
            // Under the entry it was learned with; the same call under another entry
            // would be a genuine context anomaly.
            extra.push(call(
                a,
                "frontend",
                "ads",
                "GET",
                "/ads",
                ("frontend", "GET /"),
                1 << 42,
                200,
            ));
            vec![label(name, None, "frontend", Some("ads"), a, a + 10 * SEC)]
        }
        "benign-jobs" => vec![label(
            name,
            None,
            "reporter",
            Some("db"),
            a - 600 * SEC,
            a + 1200 * SEC,
        )],
        _ => Vec::new(),
    };
    calls.extend(extra);
    calls.sort_by_key(|c| c.event_time_ns);
    (calls, labels)
}
