//! What the data dir says was called: the newest baseline snapshot's endpoints, or the
//! call history over a time range, read with DataFusion through the session `sql` and
//! `baseline rebuild` use. Calls behind alerts nobody accepted are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use eastwest_baseline::{BASELINE_DIR, list_snapshots, session};
use eastwest_model::{Alert, AlertKind, AlertState, Protocol, format_event_time};

use crate::PolicyError;
use crate::rules::{Excluded, Peer, Rule, RuleSet, RuleSource, WorkloadRules};

/// One grouped row of observed calls.
#[derive(Debug, Clone)]
struct Seen {
    source: Peer,
    destination: Peer,
    protocol: Protocol,
    method: String,
    route: String,
    port: Option<u16>,
    learned: bool,
    calls: f64,
    first_ns: i64,
    last_ns: i64,
}

/// The rule set from the newest baseline snapshot (`since`/`until` both `None`) or from
/// the call history in `[since, until)`.
pub async fn rules_from_data_dir(
    data_dir: &Path,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    alerts: &[Alert],
) -> Result<RuleSet, PolicyError> {
    let ctx = session(data_dir).await?;
    let history = history_rows(&ctx, since_ns, until_ns).await?;
    let (from, seen) = if since_ns.is_none() && until_ns.is_none() {
        let snapshot = list_snapshots(&data_dir.join(BASELINE_DIR))?
            .last()
            .cloned()
            .ok_or_else(|| PolicyError::NoSnapshot(data_dir.to_path_buf()))?;
        let name = snapshot
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let seen = baseline_rows(&ctx, &history).await?;
        (RuleSource::Baseline { snapshot: name }, seen)
    } else {
        let from = RuleSource::History {
            since: since_ns.map(format_event_time),
            until: until_ns.map(format_event_time),
        };
        (from, history)
    };
    Ok(build(from, seen, alerts))
}

/// Whether `alert` is about this call's edge and (for endpoint findings) operation.
fn alert_covers(a: &Alert, source: &str, destination: &str, method: &str, route: &str) -> bool {
    let Some(d) = &a.destination else {
        return false;
    };
    if a.source.key() != source || d.key() != destination {
        return false;
    }
    // A new edge is the finding itself: every operation on it goes with the alert.
    a.kind == AlertKind::NewEdge
        || (a.method.as_deref().is_none_or(|m| m == method)
            && a.route.as_deref().is_none_or(|r| r == route))
}

/// Kinds whose alert says the operation itself should not happen (as opposed to its
/// rate, context or the caller's behaviour around it).
fn blocks_operation(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::NewEdge | AlertKind::NewEndpoint | AlertKind::SensitiveEndpoint
    )
}

fn build(from: RuleSource, seen: Vec<Seen>, alerts: &[Alert]) -> RuleSet {
    let mut excluded = Vec::new();
    let mut by_dest: BTreeMap<String, (Peer, BTreeMap<RuleKey, Rule>)> = BTreeMap::new();
    for s in seen {
        let covering = |state: Option<AlertState>| {
            alerts.iter().find(|a| {
                state.is_none_or(|st| a.state == st)
                    && alert_covers(a, &s.source.key, &s.destination.key, &s.method, &s.route)
            })
        };
        let accepted = covering(Some(AlertState::Accepted)).is_some();
        let refused = alerts.iter().find(|a| {
            a.state != AlertState::Accepted
                && blocks_operation(a.kind)
                && alert_covers(a, &s.source.key, &s.destination.key, &s.method, &s.route)
        });
        if let Some(a) = refused {
            excluded.push(Excluded {
                source: s.source.key.clone(),
                destination: s.destination.key.clone(),
                method: s.method.clone(),
                route: s.route.clone(),
                alert_id: a.id.clone(),
            });
            continue;
        }
        if !s.learned && !accepted {
            continue;
        }
        let entry = by_dest
            .entry(s.destination.key.clone())
            .or_insert_with(|| (s.destination.clone(), BTreeMap::new()));
        let key = (
            s.source.key.clone(),
            s.method.clone(),
            s.route.clone(),
            s.port,
        );
        let rule = entry.1.entry(key).or_insert_with(|| Rule {
            source: s.source.clone(),
            protocol: s.protocol,
            method: s.method.clone(),
            route: s.route.clone(),
            port: s.port,
            calls: 0.0,
            first_seen_ns: s.first_ns,
            last_seen_ns: s.last_ns,
        });
        rule.source
            .principals
            .extend(s.source.principals.iter().cloned());
        rule.calls += s.calls;
        rule.first_seen_ns = rule.first_seen_ns.min(s.first_ns);
        rule.last_seen_ns = rule.last_seen_ns.max(s.last_ns);
    }
    excluded.sort_by(|a, b| {
        (&a.destination, &a.source, &a.method, &a.route).cmp(&(
            &b.destination,
            &b.source,
            &b.method,
            &b.route,
        ))
    });
    excluded.dedup();
    RuleSet {
        from,
        workloads: by_dest
            .into_values()
            .map(|(destination, rules)| WorkloadRules {
                destination,
                rules: rules.into_values().collect(),
            })
            .collect(),
        excluded,
    }
}

/// (source, destination, method, route) by reference.
type EndpointRef<'a> = (&'a str, &'a str, &'a str, &'a str);

type RuleKey = (String, String, String, Option<u16>);

async fn collect(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<Vec<RecordBatch>, PolicyError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

fn strs(b: &RecordBatch, i: usize) -> Result<Vec<Option<String>>, PolicyError> {
    let col = cast(b.column(i), &DataType::Utf8)?;
    let col = col.as_string::<i32>();
    Ok((0..col.len())
        .map(|r| (!col.is_null(r)).then(|| col.value(r).to_owned()))
        .collect())
}

fn i64s(b: &RecordBatch, i: usize) -> Result<Vec<i64>, PolicyError> {
    let col = cast(b.column(i), &DataType::Int64)?;
    Ok(col
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

fn f64s(b: &RecordBatch, i: usize) -> Result<Vec<f64>, PolicyError> {
    let col = cast(b.column(i), &DataType::Float64)?;
    Ok(col
        .as_primitive::<Float64Type>()
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect())
}

fn bools(b: &RecordBatch, i: usize) -> Result<Vec<bool>, PolicyError> {
    let col = cast(b.column(i), &DataType::Boolean)?;
    Ok(col
        .as_boolean()
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect())
}

/// The port of a `host:port` address (IPv6 literals in brackets included).
pub(crate) fn port_of(address: &str) -> Option<u16> {
    let (host, port) = address.rsplit_once(':')?;
    if host.is_empty() || (host.contains(':') && !host.ends_with(']')) {
        return None;
    }
    port.parse().ok().filter(|p| *p != 0)
}

/// A time filter on the `calls` table.
pub(crate) fn time_filter(since_ns: Option<i64>, until_ns: Option<i64>) -> String {
    let mut filter = String::from("TRUE");
    if let Some(s) = since_ns {
        filter.push_str(&format!(" AND CAST(time AS BIGINT) >= {s}"));
    }
    if let Some(u) = until_ns {
        filter.push_str(&format!(" AND CAST(time AS BIGINT) < {u}"));
    }
    filter
}

async fn history_rows(
    ctx: &datafusion::prelude::SessionContext,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
) -> Result<Vec<Seen>, PolicyError> {
    let sql = format!(
        "SELECT source, source_service, source_namespace, source_principal, destination, \
         destination_service, destination_namespace, protocol, method, route, \
         destination_address, learned, min(CAST(time AS BIGINT)), max(CAST(time AS BIGINT)), \
         sum(weight) FROM calls WHERE {} \
         GROUP BY source, source_service, source_namespace, source_principal, destination, \
         destination_service, destination_namespace, protocol, method, route, \
         destination_address, learned",
        time_filter(since_ns, until_ns)
    );
    let mut out = Vec::new();
    for b in collect(ctx, &sql).await? {
        let cols: Vec<_> = (0..11).map(|i| strs(&b, i)).collect::<Result<_, _>>()?;
        let (learned, first, last, calls) =
            (bools(&b, 11)?, i64s(&b, 12)?, i64s(&b, 13)?, f64s(&b, 14)?);
        let s = |c: usize, r: usize| cols[c][r].clone().unwrap_or_default();
        for r in 0..b.num_rows() {
            out.push(Seen {
                source: Peer {
                    key: s(0, r),
                    service: s(1, r),
                    namespace: cols[2][r].clone(),
                    principals: cols[3][r].iter().cloned().collect(),
                },
                destination: Peer {
                    key: s(4, r),
                    service: s(5, r),
                    namespace: cols[6][r].clone(),
                    principals: BTreeSet::new(),
                },
                protocol: Protocol::parse(&s(7, r)).unwrap_or_default(),
                method: s(8, r),
                route: s(9, r),
                port: cols[10][r].as_deref().and_then(port_of),
                learned: learned[r],
                calls: calls[r],
                first_ns: first[r],
                last_ns: last[r],
            });
        }
    }
    Ok(out)
}

/// A workload named only by its key: `service.namespace` split at the last dot.
fn peer_from_key(key: &str) -> Peer {
    let (service, namespace) = match key.rsplit_once('.') {
        Some((s, n)) if !s.is_empty() && !n.is_empty() => (s.to_owned(), Some(n.to_owned())),
        _ => (key.to_owned(), None),
    };
    Peer {
        key: key.to_owned(),
        service,
        namespace,
        principals: BTreeSet::new(),
    }
}

/// A protocol guessed from a route when the history no longer has the call.
fn guess_protocol(route: &str) -> Protocol {
    if route.starts_with('/') {
        Protocol::Http
    } else if route.contains('/') {
        Protocol::Grpc
    } else {
        Protocol::Tcp
    }
}

/// The snapshot's endpoints, detailed (service, namespace, protocol, ports) from the
/// history where it still has them. Everything in a snapshot was learned.
async fn baseline_rows(
    ctx: &datafusion::prelude::SessionContext,
    history: &[Seen],
) -> Result<Vec<Seen>, PolicyError> {
    let mut peers: BTreeMap<&str, &Peer> = BTreeMap::new();
    let mut details: BTreeMap<EndpointRef<'_>, (Protocol, BTreeSet<Option<u16>>)> = BTreeMap::new();
    for h in history {
        peers.entry(&h.source.key).or_insert(&h.source);
        peers.entry(&h.destination.key).or_insert(&h.destination);
        let d = details
            .entry((&h.source.key, &h.destination.key, &h.method, &h.route))
            .or_insert((h.protocol, BTreeSet::new()));
        d.1.insert(h.port);
    }
    let mut principals: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in collect(ctx, "SELECT workload, principal FROM principals").await? {
        let (w, p) = (strs(&b, 0)?, strs(&b, 1)?);
        for (w, p) in w.into_iter().zip(p) {
            if let (Some(w), Some(p)) = (w, p) {
                principals.entry(w).or_default().insert(p);
            }
        }
    }
    let peer = |key: &str, with_principals: bool| {
        let mut p = peers
            .get(key)
            .map(|p| Peer {
                principals: BTreeSet::new(),
                ..(*p).clone()
            })
            .unwrap_or_else(|| peer_from_key(key));
        if with_principals {
            p.principals = principals.get(key).cloned().unwrap_or_default();
        }
        p
    };
    let sql = "SELECT source, destination, method, route, CAST(first_seen AS BIGINT), \
               CAST(last_seen AS BIGINT), calls FROM endpoints";
    let mut out = Vec::new();
    for b in collect(ctx, sql).await? {
        let cols: Vec<_> = (0..4).map(|i| strs(&b, i)).collect::<Result<_, _>>()?;
        let (first, last, calls) = (i64s(&b, 4)?, i64s(&b, 5)?, f64s(&b, 6)?);
        for r in 0..b.num_rows() {
            let v = |c: usize| cols[c][r].clone().unwrap_or_default();
            let (source, destination, method, route) = (v(0), v(1), v(2), v(3));
            let (protocol, ports) = details
                .get(&(
                    source.as_str(),
                    destination.as_str(),
                    method.as_str(),
                    route.as_str(),
                ))
                .cloned()
                .unwrap_or_else(|| (guess_protocol(&route), BTreeSet::from([None])));
            // Calls split evenly over the ports seen: only the total is kept per endpoint.
            let share = calls[r] / ports.len().max(1) as f64;
            for port in ports {
                out.push(Seen {
                    source: peer(&source, true),
                    destination: peer(&destination, false),
                    protocol,
                    method: method.clone(),
                    route: route.clone(),
                    port,
                    learned: true,
                    calls: share,
                    first_ns: first[r],
                    last_ns: last[r],
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_addresses() {
        assert_eq!(port_of("cart.shop:7070"), Some(7070));
        assert_eq!(port_of("[::1]:80"), Some(80));
        assert_eq!(port_of("::1"), None);
        assert_eq!(port_of("cart.shop"), None);
        assert_eq!(port_of("cart:0"), None);
        assert_eq!(port_of("cart:99999"), None);
    }

    #[test]
    fn keys_split_at_the_last_dot() {
        let p = peer_from_key("cart.shop");
        assert_eq!(
            (p.service.as_str(), p.namespace.as_deref()),
            ("cart", Some("shop"))
        );
        assert_eq!(peer_from_key("cart").namespace, None);
    }
}
