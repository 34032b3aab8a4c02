//! Injected spans in the style of the real ones: each service names its gRPC spans its
//! own way (`hipstershop.CartService/GetCart`, `grpc.hipstershop.CurrencyService/Convert`,
//! `/hipstershop.EmailService/SendOrderConfirmation`), runs in its real pods, and its
//! calls are a CLIENT row under the caller's span and a SERVER row under it in the
//! callee, exactly as the recorded rows are.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, RngCore};

use super::timeline::{SpanIndex, Window};
use crate::convert::{NezhaRow, service_from_pod};

/// Spans of an operation name around the canonical `package.Service/Method`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Naming {
    prefix: String,
    suffix: String,
}

impl Naming {
    /// `grpc.hipstershop.X/Y` → prefix `grpc.`; `hipstershop.Frontend/Recv.` → suffix `.`.
    fn of(op: &str) -> Option<Self> {
        let i = op.find("hipstershop.")?;
        let suffix = if op.ends_with('.') { "." } else { "" };
        Some(Self {
            prefix: op[..i].into(),
            suffix: suffix.into(),
        })
    }

    pub fn name(&self, method: &str) -> String {
        format!("{}{method}{}", self.prefix, self.suffix)
    }
}

/// How each service names its server and client spans, and its pods, as recorded.
#[derive(Debug, Default)]
pub(crate) struct Styles {
    server: HashMap<String, Naming>,
    client: HashMap<String, Naming>,
}

impl Styles {
    /// The most common naming per service and side over `windows` (ties: the smaller).
    pub fn learn(windows: &[Window]) -> Self {
        type Counts = BTreeMap<(String, Naming), usize>;
        let (mut server, mut client): (Counts, Counts) = Default::default();
        for w in windows {
            let ix = SpanIndex::new(&w.rows);
            for r in &w.rows {
                let Some(naming) = Naming::of(&r.op) else {
                    continue;
                };
                let svc = service_from_pod(&r.pod).to_string();
                if ix.is_server(r) {
                    *server.entry((svc, naming)).or_default() += 1;
                } else if ix.callee(r).is_some() {
                    *client.entry((svc, naming)).or_default() += 1;
                }
            }
        }
        let pick = |counts: Counts| {
            let mut best: HashMap<String, (usize, Naming)> = HashMap::new();
            for ((svc, naming), n) in counts {
                let b = best.entry(svc).or_insert((0, naming.clone()));
                if n > b.0 {
                    *b = (n, naming);
                }
            }
            best.into_iter().map(|(s, (_, n))| (s, n)).collect()
        };
        Self {
            server: pick(server),
            client: pick(client),
        }
    }

    pub fn server_op(&self, service: &str, method: &str) -> String {
        self.server
            .get(service)
            .cloned()
            .unwrap_or_default()
            .name(method)
    }

    pub fn client_op(&self, service: &str, method: &str) -> String {
        self.client
            .get(service)
            .cloned()
            .unwrap_or_default()
            .name(method)
    }
}

/// A service's pod in a window: the one with most spans (ties: the smaller name), else
/// a pod name in the Kubernetes shape.
pub(crate) fn pod_of(rows: &[NezhaRow], service: &str) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| service_from_pod(&r.pod) == service) {
        *counts.entry(&r.pod).or_default() += 1;
    }
    let mut best: Option<(&str, usize)> = None;
    for (pod, n) in counts {
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((pod, n));
        }
    }
    best.map_or_else(|| format!("{service}-5d8f7c6b9-x2k4p"), |(p, _)| p.into())
}

/// Fresh ids and rows for injections.
pub(crate) struct Ids {
    rng: StdRng,
}

impl Ids {
    pub fn new(rng: StdRng) -> Self {
        Self { rng }
    }

    pub fn trace(&mut self) -> Vec<u8> {
        let mut id = vec![0u8; 16];
        self.rng.fill_bytes(&mut id);
        id
    }

    pub fn span(&mut self) -> Vec<u8> {
        let mut id = vec![0u8; 8];
        self.rng.fill_bytes(&mut id);
        id
    }

    /// A few characters of a pod name's random part.
    pub fn suffix(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| CHARS[self.rng.random_range(0..CHARS.len())] as char)
            .collect()
    }

    pub fn jitter(&mut self, max_ns: u64) -> u64 {
        self.rng.random_range(0..max_ns.max(1))
    }
}

/// One gRPC call as recorded: the caller's CLIENT row (under `parent`) and the callee's
/// SERVER row under it.
pub(crate) struct CallSpec<'a> {
    pub trace: &'a [u8],
    pub parent: &'a [u8],
    pub caller_pod: &'a str,
    pub callee_pod: &'a str,
    /// `hipstershop.CartService/GetCart`.
    pub method: &'a str,
    pub start: u64,
    pub duration: u64,
    pub grpc_status: Option<i64>,
}

/// Server-side time inside a client span (network both ways).
const NETWORK_NS: u64 = 150_000;

pub(crate) fn call_rows(spec: &CallSpec, styles: &Styles, ids: &mut Ids) -> [NezhaRow; 2] {
    let client_id = ids.span();
    let server_id = ids.span();
    let (caller, callee) = (
        service_from_pod(spec.caller_pod),
        service_from_pod(spec.callee_pod),
    );
    let inner = spec.duration.saturating_sub(2 * NETWORK_NS).max(1);
    [
        NezhaRow {
            trace: spec.trace.to_vec(),
            id: client_id.clone(),
            parent: Some(spec.parent.to_vec()),
            pod: spec.caller_pod.into(),
            op: styles.client_op(caller, spec.method),
            start: spec.start,
            end: spec.start + spec.duration,
            grpc_status: spec.grpc_status,
        },
        NezhaRow {
            trace: spec.trace.to_vec(),
            id: server_id,
            parent: Some(client_id),
            pod: spec.callee_pod.into(),
            op: styles.server_op(callee, spec.method),
            start: spec.start + NETWORK_NS,
            end: spec.start + NETWORK_NS + inner,
            grpc_status: spec.grpc_status,
        },
    ]
}

/// `rows` (a subtree or a trace) copied under new span ids, moved by `offset_ns`, in
/// trace `trace`; parents outside the copied rows are kept as they are.
pub(crate) fn copy_rows(
    rows: &[&NezhaRow],
    trace: &[u8],
    offset_ns: u64,
    ids: &mut Ids,
) -> Vec<NezhaRow> {
    let new_ids: HashMap<&[u8], Vec<u8>> =
        rows.iter().map(|r| (r.id.as_slice(), ids.span())).collect();
    rows.iter()
        .map(|r| NezhaRow {
            trace: trace.to_vec(),
            id: new_ids[r.id.as_slice()].clone(),
            parent: r.parent.as_ref().map(|p| {
                new_ids
                    .get(p.as_slice())
                    .cloned()
                    .unwrap_or_else(|| p.clone())
            }),
            pod: r.pod.clone(),
            op: r.op.clone(),
            start: r.start + offset_ns,
            end: r.end + offset_ns,
            grpc_status: r.grpc_status,
        })
        .collect()
}

/// The rows of `root` and everything under it, in row order.
pub(crate) fn subtree<'a>(rows: &'a [NezhaRow], root: &NezhaRow) -> Vec<&'a NezhaRow> {
    let mut children: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, r) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.trace == root.trace)
    {
        if let Some(p) = &r.parent {
            children.entry(p.as_slice()).or_default().push(i);
        }
    }
    let mut keep = Vec::new();
    let mut stack = vec![root.id.as_slice()];
    while let Some(id) = stack.pop() {
        for &i in children.get(id).map(Vec::as_slice).unwrap_or_default() {
            keep.push(i);
            stack.push(rows[i].id.as_slice());
        }
    }
    keep.sort_unstable();
    let mut out: Vec<&NezhaRow> = rows
        .iter()
        .filter(|r| r.trace == root.trace && r.id == root.id)
        .collect();
    out.extend(keep.into_iter().map(|i| &rows[i]));
    out
}
