//! The per-scenario injections and their labels. The Online Boutique keeps its
//! hand-written injections (their bytes are pinned by the eval golden file); the other
//! topologies run the same scenarios from their [`AttackPlan`].

use chrono::DateTime;
use eastwest_model::{AlertKind, Label};

use super::bodies::{exfil_scale, is_listing};
use super::spans::{Exfil, Gen, Inject, SpanStyle, inject};
use super::topology::{AttackPlan, Hop, Name, Topology, db, grpc, h, is_grpc};
use super::{DatasetError, SEC};

#[allow(clippy::too_many_arguments)] // the label's fields, in schema order
fn label(
    ns: &str,
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
        source: format!("{src}.{ns}"),
        destination: dst.map(|d| format!("{d}.{ns}")),
        method: method.map(Into::into),
        route: route.map(Into::into),
        start: DateTime::from_timestamp_nanos(start),
        end: DateTime::from_timestamp_nanos(end),
        class: if kind.is_some() { "attack" } else { "benign" }.into(),
    }
}

/// The caller acting on its own: a trace rooted at the caller, entry = the call itself.
fn own(inj: Inject, t: i64, g: &mut Gen) {
    let route = format!("{} {}", inj.hop.method, inj.hop.path);
    let caller = inj.hop.caller.clone();
    g.request(&caller, &route, &[inj], t);
}

/// Normal traffic for the whole scenario, the benign change or the attack, and labels.
pub(super) fn run(
    name: &str,
    g: &mut Gen,
    topo: &Topology,
    rate: f64,
    start: i64,
    attack_start: i64,
    attack_end: i64,
) -> Result<Vec<Label>, DatasetError> {
    g.normal(topo, start, attack_start, rate, 500);
    // Normal traffic continues through the attack window (surge scales it).
    let phase_rate = if name == "benign-surge" {
        rate * 5.0
    } else {
        rate
    };
    match name {
        "benign-rollout" => {
            g.version = "v2";
            g.rollout_adds_route = true;
        }
        "benign-new-pods" => g.pod_generation = 7,
        "benign-jobs" => g.job_adds_step = true,
        _ => {}
    }
    let t0 = attack_start + 60 * SEC;
    // Set before the attack phase's traffic: the exfiltration rides on it.
    let exfil_entry = if name == "exfiltration" {
        let (entry, hop) = exfil_target(topo)?;
        if g.style == SpanStyle::Sdk && g.logs.is_none() && is_grpc(&hop.method, &hop.path) {
            return Err(DatasetError::InvalidOptions(format!(
                "{name} needs body sizes: SDK gRPC spans carry none (add access logs or use istio spans)"
            )));
        }
        let until = (t0 + EXFIL_SECS * SEC).min(attack_end);
        g.exfil = Some(Exfil {
            scale: exfil_scale(&hop),
            hop,
            from: t0,
            until: if until > t0 { until } else { t0 + SEC },
            calls: 0,
        });
        Some(entry)
    } else {
        None
    };
    g.normal(
        topo,
        attack_start,
        attack_end,
        phase_rate,
        if name == "benign-rare-path" { 50 } else { 500 },
    );
    g.force_keep = true;
    if let Some((service, route, hops)) = exfil_entry {
        let label = exfiltration(name, g, &topo.namespace, &service, &route, &hops);
        g.force_keep = false;
        return Ok(vec![label]);
    }
    let labels = match &topo.plan {
        None => boutique(name, g, &topo.namespace, t0, attack_start, attack_end),
        Some(plan) => generic(name, g, topo, plan, t0, attack_start, attack_end)?,
    };
    g.force_keep = false;
    Ok(labels)
}

/// An entry (service, route) and its hops up to one of interest.
type EntryPrefix = (Name, Name, Vec<Inject>);

/// How long the exfiltration lasts.
const EXFIL_SECS: i64 = 5 * 60;

/// What the exfiltration reads, with its entry (service, route, hops up to and
/// including it): the compromised workload's first non-database call in an entry's
/// request tree; on a topology where it makes none, the first read (GET or a gRPC
/// `Get…`/`List…`) a mid-tier service makes, a listing first (any first call at worst).
fn exfil_target(topo: &Topology) -> Result<(EntryPrefix, Hop), DatasetError> {
    let compromised = topo
        .plan
        .as_ref()
        .map_or("recommendationservice", |p| p.compromised.as_ref());
    let candidates = || {
        topo.entries.iter().flat_map(|e| {
            e.hops
                .iter()
                .enumerate()
                .filter(|(_, h)| h.db.is_none())
                .map(move |(i, h)| (e, i, h))
        })
    };
    let entry_services: Vec<&str> = topo.entries.iter().map(|e| e.service.as_ref()).collect();
    let is_read = |h: &Hop| {
        h.method == "GET"
            || (is_grpc(&h.method, &h.path)
                && h.path
                    .rsplit('/')
                    .next()
                    .is_some_and(|m| m.starts_with("Get") || m.starts_with("List")))
    };
    let (entry, i, hop) = candidates()
        .find(|(_, _, h)| h.caller == compromised)
        .or_else(|| {
            let mid_tier_read = |h: &Hop| is_read(h) && !entry_services.contains(&&*h.caller);
            // A listing moves the most; any read will do.
            candidates()
                .find(|(_, _, h)| mid_tier_read(h) && is_listing(h))
                .or_else(|| candidates().find(|(_, _, h)| mid_tier_read(h)))
        })
        .or_else(|| candidates().next())
        .ok_or_else(|| unsupported("exfiltration", topo, "no entry makes a service call"))?;
    let hops = entry.hops[..=i].iter().cloned().map(inject).collect();
    Ok((
        (entry.service.clone(), entry.route.clone(), hops),
        hop.clone(),
    ))
}

/// The exfiltration's label, once the attack phase's traffic ran: the edge's caller read
/// its usual endpoint at its usual rate, with outsized responses. When that traffic never
/// reached the edge inside the window (a low rate), one request through the entry does.
fn exfiltration(
    name: &str,
    g: &mut Gen,
    ns: &str,
    service: &str,
    route: &str,
    hops: &[Inject],
) -> Label {
    let e = g.exfil.as_ref().expect("exfiltration was set up");
    let (hop, from, until, calls) = (e.hop.clone(), e.from, e.until, e.calls);
    if calls == 0 {
        g.request(service, route, hops, from);
    }
    g.exfil = None;
    hop_label(ns, name, AlertKind::VolumeSpike, &hop, from, until)
}

/// `caller` reads cloud instance credentials from the metadata address, outside the mesh
/// (no sidecar span on the far side, no mTLS); returns its label.
fn cloud_metadata(ns: &str, name: &str, caller: Name, t0: i64, g: &mut Gen) -> Label {
    const PATH: &str = "/latest/meta-data/iam/security-credentials/";
    let mut inj = inject(h("", "169.254.169.254", 80, "GET", PATH));
    inj.hop.caller = caller;
    inj.instrumented = false;
    inj.mtls = false;
    let src = inj.hop.caller.to_string();
    own(inj, t0, g);
    label(
        ns,
        name,
        Some(AlertKind::SensitiveEndpoint),
        &src,
        None,
        Some("GET"),
        Some(PATH),
        t0,
        t0 + SEC,
    )
}

/// Label of a benign change: the whole attack phase, nothing may fire for it.
fn benign(ns: &str, name: &str, src: &str, attack_start: i64, attack_end: i64) -> Label {
    label(
        ns,
        name,
        None,
        src,
        None,
        None,
        None,
        attack_start,
        attack_end,
    )
}

fn boutique(
    name: &str,
    g: &mut Gen,
    ns: &str,
    t0: i64,
    attack_start: i64,
    attack_end: i64,
) -> Vec<Label> {
    let compromised = "recommendationservice";
    let mut labels = Vec::new();
    match name {
        "admin-endpoint" => {
            own(
                inject(h(compromised, "cartservice", 7070, "GET", "/admin/dump")),
                t0,
                g,
            );
            labels.push(label(
                ns,
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
                    g,
                );
            }
            labels.push(label(
                ns,
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
                own(inj, t0 + i as i64 * 2 * SEC, g);
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
                g,
            );
            labels.push(label(
                ns,
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
                ns,
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
                ns,
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
                ns,
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
            own(inj, t0, g);
            labels.push(label(
                ns,
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
            inj.principal_of = Some("checkoutservice".into());
            own(inj, t0, g);
            labels.push(label(
                ns,
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
                g,
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
                g,
            );
            labels.push(label(
                ns,
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
                ns,
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
            labels.push(cloud_metadata(ns, name, compromised.into(), t0, g));
        }
        "bulk-read" => {
            for i in 0..600 {
                g.request(
                    "cartservice",
                    "POST /hipstershop.CartService/GetCart",
                    &[inject(db(
                        "cartservice",
                        "redis-cart",
                        "redis",
                        6379,
                        "HGETALL",
                        "cart",
                    ))],
                    t0 + i * SEC / 10,
                );
            }
            labels.push(label(
                ns,
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
        _ => labels.push(benign(
            ns,
            name,
            if name == "benign-jobs" {
                "catalog-reindex"
            } else {
                "frontend"
            },
            attack_start,
            attack_end,
        )),
    }
    labels
}

fn route_of(hop: &Hop) -> (String, String) {
    (hop.method.to_string(), hop.path.to_string())
}

/// The label of one injected hop: kind, caller → callee, method, route template.
fn hop_label(ns: &str, name: &str, kind: AlertKind, hop: &Hop, start: i64, end: i64) -> Label {
    let (method, route) = route_of(hop);
    label(
        ns,
        name,
        Some(kind),
        &hop.caller,
        Some(&hop.callee),
        Some(&method),
        Some(&route),
        start,
        end,
    )
}

fn unsupported(name: &str, topo: &Topology, why: &str) -> DatasetError {
    DatasetError::ScenarioUnavailable {
        scenario: name.to_owned(),
        topology: topo.name.to_string(),
        reason: why.to_owned(),
    }
}

/// The scenarios on a topology described by an [`AttackPlan`].
fn generic(
    name: &str,
    g: &mut Gen,
    topo: &Topology,
    plan: &AttackPlan,
    t0: i64,
    attack_start: i64,
    attack_end: i64,
) -> Result<Vec<Label>, DatasetError> {
    let ns: &str = &topo.namespace;
    let c: &str = &plan.compromised;
    let mut labels = Vec::new();
    match name {
        "admin-endpoint" => {
            own(inject(plan.admin.clone()), t0, g);
            labels.push(hop_label(
                ns,
                name,
                AlertKind::SensitiveEndpoint,
                &plan.admin,
                t0,
                t0 + SEC,
            ));
        }
        "fan-out" => {
            for (i, (svc, port)) in plan.fan_out.iter().enumerate() {
                let hop = Hop {
                    caller: plan.compromised.clone(),
                    callee: svc.clone(),
                    port: *port,
                    method: "GET".into(),
                    path: "/healthz".into(),
                    db: None,
                };
                own(inject(hop), t0 + i as i64 * SEC, g);
            }
            let end = t0 + plan.fan_out.len() as i64 * SEC;
            labels.push(label(
                ns,
                name,
                Some(AlertKind::FanOut),
                c,
                None,
                None,
                None,
                t0,
                end,
            ));
        }
        "probing" => {
            let target = &plan.probe_success;
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
                let mut inj = inject(Hop {
                    method: "GET".into(),
                    path: (*path).into(),
                    ..target.clone()
                });
                inj.status = if i % 2 == 0 { 404 } else { 403 };
                own(inj, t0 + i as i64 * 2 * SEC, g);
            }
            own(inject(target.clone()), t0 + 12 * SEC, g);
            labels.push(label(
                ns,
                name,
                Some(AlertKind::Probing),
                c,
                Some(&target.callee),
                None,
                None,
                t0,
                t0 + 13 * SEC,
            ));
        }
        "context-anomaly" => {
            let Some((service, route, hops)) = &plan.context else {
                return Err(unsupported(name, topo, "no two entries share a caller"));
            };
            let injs: Vec<Inject> = hops.iter().map(|h| inject(h.clone())).collect();
            for i in 0..3 {
                g.request(service, route, &injs, t0 + i * SEC);
            }
            // Every hop after the entry's own first one is a known edge in a new context.
            for hop in &hops[1..] {
                labels.push(hop_label(
                    ns,
                    name,
                    AlertKind::ContextAnomaly,
                    hop,
                    t0,
                    t0 + 3 * SEC,
                ));
            }
        }
        "new-endpoint" => {
            let (service, route, chain, hop) = &plan.new_endpoint;
            let mut injs: Vec<Inject> = chain.iter().map(|h| inject(h.clone())).collect();
            injs.push(inject(hop.clone()));
            g.request(service, route, &injs, t0);
            labels.push(hop_label(
                ns,
                name,
                AlertKind::NewEndpoint,
                hop,
                t0,
                t0 + SEC,
            ));
        }
        "plaintext" => {
            let mut inj = inject(plan.lateral.clone());
            inj.mtls = false;
            own(inj, t0, g);
            labels.push(hop_label(
                ns,
                name,
                AlertKind::Plaintext,
                &plan.lateral,
                t0,
                t0 + SEC,
            ));
        }
        "identity-spoof" => {
            let mut inj = inject(plan.lateral.clone());
            inj.principal_of = Some(plan.spoof_as.clone());
            own(inj, t0, g);
            labels.push(hop_label(
                ns,
                name,
                AlertKind::IdentityMismatch,
                &plan.lateral,
                t0,
                t0 + SEC,
            ));
        }
        "multi-hop" => {
            let (a, b) = &plan.multi_hop;
            own(inject(a.clone()), t0, g);
            let t1 = t0 + 30 * 60 * SEC;
            own(inject(b.clone()), t1, g);
            labels.push(hop_label(ns, name, AlertKind::NewEdge, a, t0, t0 + SEC));
            labels.push(hop_label(ns, name, AlertKind::NewEdge, b, t1, t1 + SEC));
        }
        "cloud-metadata" => {
            labels.push(cloud_metadata(ns, name, plan.compromised.clone(), t0, g));
        }
        "bulk-read" => {
            let Some((route, hop)) = &plan.bulk_read else {
                return Err(unsupported(name, topo, "it has no database"));
            };
            // Reads inside one of the caller's own routes, ten a second for a minute.
            for i in 0..600 {
                g.request(
                    &hop.caller,
                    route,
                    &[inject(hop.clone())],
                    t0 + i * SEC / 10,
                );
            }
            labels.push(hop_label(
                ns,
                name,
                AlertKind::RateSpike,
                hop,
                t0,
                t0 + 60 * SEC,
            ));
        }
        _ => labels.push(benign(
            ns,
            name,
            if name == "benign-jobs" {
                &topo.job.service
            } else {
                &topo.entries[0].service
            },
            attack_start,
            attack_end,
        )),
    }
    Ok(labels)
}
