//! The stateful span normaliser: a bounded pairing store on event time plus per-trace
//! entry tracking.
//!
//! Pairing follows the OTel servicegraph connector: CLIENT/PRODUCER spans wait under
//! (trace, span id), SERVER/CONSUMER spans under (trace, parent id). Proxy layers (app
//! client → sidecar client, sidecar server → app server, gateway client → client) are
//! recognised when a side expires unpaired: a caller that is the parent of another
//! caller, or a callee whose parent is another callee, is a layer of a call already
//! counted, not a call to or from a virtual peer.

use std::collections::{BTreeMap, HashMap, HashSet};

use eastwest_model::{Call, Entry, Protocol, Workload};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Serialize;

use super::NormalizerConfig;
use super::info::{Side, SpanInfo, principal_workload};
use super::routes::RouteCap;

type Key = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Caller,
    Callee,
    CallerChildMarker,
    CalleeIdMarker,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct NormalizerStats {
    pub spans_seen: u64,
    /// Spans ignored: INTERNAL/unspecified kinds, unusable ids.
    pub spans_ignored: u64,
    pub pending: u64,
    pub paired: u64,
    pub virtual_peers: u64,
    /// Unpaired sides recognised as proxy layers of a call already counted.
    pub layers_collapsed: u64,
    /// Unpaired sides evicted because the store was full.
    pub dropped: u64,
    pub route_overflow: u64,
    pub waiting_for_entry: u64,
    /// Calls emitted without entry tracking because `max_traces` was reached.
    pub traces_untracked: u64,
}

#[derive(Debug, Default)]
struct TraceEntry {
    entry: Option<Entry>,
    definitive: bool,
    best_start_ns: i64,
    waiting: Vec<Call>,
    last_ns: i64,
}

pub struct SpanNormalizer {
    config: NormalizerConfig,
    callers: HashMap<Key, SpanInfo>,
    callees: HashMap<Key, SpanInfo>,
    caller_children: HashSet<Key>,
    callee_ids: HashSet<Key>,
    expiry: BTreeMap<(i64, u64), (Slot, Key)>,
    seq: u64,
    traces: HashMap<String, TraceEntry>,
    routes: RouteCap,
    stats: NormalizerStats,
}

impl SpanNormalizer {
    pub fn new(config: NormalizerConfig) -> Self {
        let routes = RouteCap::new(config.max_routes_per_edge, config.max_edges);
        Self {
            config,
            callers: HashMap::new(),
            callees: HashMap::new(),
            caller_children: HashSet::new(),
            callee_ids: HashSet::new(),
            expiry: BTreeMap::new(),
            seq: 0,
            traces: HashMap::new(),
            routes,
            stats: NormalizerStats::default(),
        }
    }

    pub fn stats(&self) -> NormalizerStats {
        let mut s = self.stats;
        s.pending = (self.callers.len() + self.callees.len()) as u64;
        s.waiting_for_entry = self.traces.values().map(|t| t.waiting.len() as u64).sum();
        s.route_overflow = self.routes.overflowed;
        s
    }

    /// Calls completed by this batch.
    pub fn push(&mut self, request: &ExportTraceServiceRequest) -> Vec<Call> {
        let mut out = Vec::new();
        for rs in &request.resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    self.stats.spans_seen += 1;
                    match SpanInfo::from_span(span, resource) {
                        Some(info) => self.push_span(info, &mut out),
                        None => self.stats.spans_ignored += 1,
                    }
                }
            }
        }
        out
    }

    /// Expires unpaired sides and releases calls whose entry wait passed `watermark_ns`.
    pub fn advance(&mut self, watermark_ns: i64) -> Vec<Call> {
        let mut out = Vec::new();
        while let Some(entry) = self.expiry.first_entry() {
            if entry.key().0 > watermark_ns {
                break;
            }
            let (slot, key) = entry.remove();
            self.expire(slot, key, &mut out);
        }
        self.release_waiting(Some(watermark_ns), &mut out);
        out
    }

    /// Shutdown: everything pending becomes a call now.
    pub fn flush(&mut self) -> Vec<Call> {
        let mut out = Vec::new();
        while let Some((_, (slot, key))) = self.expiry.pop_first() {
            self.expire(slot, key, &mut out);
        }
        self.release_waiting(None, &mut out);
        out
    }

    fn schedule(&mut self, at_ns: i64, slot: Slot, key: Key) {
        self.seq += 1;
        self.expiry.insert((at_ns, self.seq), (slot, key));
    }

    fn push_span(&mut self, info: SpanInfo, out: &mut Vec<Call>) {
        let ttl = self.config.pairing_ttl.as_nanos() as i64;
        let start = info.start_ns;
        match info.side {
            Side::Callee => {
                self.note_entry_candidate(&info, out);
                let id_key = (info.trace_id.clone(), info.span_id.clone());
                if self.callee_ids.insert(id_key.clone()) {
                    self.schedule(start.saturating_add(2 * ttl), Slot::CalleeIdMarker, id_key);
                }
                let key = (info.trace_id.clone(), info.parent_id.clone());
                if let Some(caller) = self.callers.remove(&key) {
                    self.stats.paired += 1;
                    let call = self.build_call(&caller, Some(&info));
                    self.complete(call, out);
                } else {
                    self.make_room();
                    if self.callees.insert(key.clone(), info).is_none() {
                        self.schedule(start.saturating_add(ttl), Slot::Callee, key);
                    }
                }
            }
            Side::Caller => {
                if !info.parent_id.is_empty() {
                    let child_key = (info.trace_id.clone(), info.parent_id.clone());
                    if self.caller_children.insert(child_key.clone()) {
                        self.schedule(
                            start.saturating_add(2 * ttl),
                            Slot::CallerChildMarker,
                            child_key,
                        );
                    }
                }
                let key = (info.trace_id.clone(), info.span_id.clone());
                if let Some(callee) = self.callees.remove(&key) {
                    self.stats.paired += 1;
                    let call = self.build_call(&info, Some(&callee));
                    self.complete(call, out);
                } else {
                    self.make_room();
                    if self.callers.insert(key.clone(), info).is_none() {
                        self.schedule(start.saturating_add(ttl), Slot::Caller, key);
                    }
                }
            }
        }
    }

    /// Evicts the oldest pending side when the store is full.
    fn make_room(&mut self) {
        while self.callers.len() + self.callees.len() >= self.config.max_pending_spans {
            let Some(k) = self
                .expiry
                .iter()
                .find(|(_, (slot, _))| matches!(slot, Slot::Caller | Slot::Callee))
                .map(|(k, _)| *k)
            else {
                return;
            };
            let (slot, key) = self.expiry.remove(&k).expect("key just found");
            let removed = match slot {
                Slot::Caller => self.callers.remove(&key).is_some(),
                _ => self.callees.remove(&key).is_some(),
            };
            if removed {
                self.stats.dropped += 1;
            }
        }
    }

    fn expire(&mut self, slot: Slot, key: Key, out: &mut Vec<Call>) {
        match slot {
            Slot::CallerChildMarker => {
                self.caller_children.remove(&key);
            }
            Slot::CalleeIdMarker => {
                self.callee_ids.remove(&key);
            }
            Slot::Caller => {
                let Some(caller) = self.callers.remove(&key) else {
                    return;
                };
                if self.caller_children.contains(&key) {
                    self.stats.layers_collapsed += 1;
                    return;
                }
                self.stats.virtual_peers += 1;
                let call = self.build_call(&caller, None);
                self.complete(call, out);
            }
            Slot::Callee => {
                let Some(callee) = self.callees.remove(&key) else {
                    return;
                };
                // key = (trace, parent id): a parent that is itself a callee means this
                // is the app layer behind a sidecar's server span.
                if callee.parent_id.is_empty() || self.callee_ids.contains(&key) {
                    if !callee.parent_id.is_empty() {
                        self.stats.layers_collapsed += 1;
                    }
                    return;
                }
                self.stats.virtual_peers += 1;
                let call = self.build_unknown_caller_call(&callee);
                self.complete(call, out);
            }
        }
    }

    fn build_call(&mut self, caller: &SpanInfo, callee: Option<&SpanInfo>) -> Call {
        let mut source = caller.workload.clone();
        if source.principal.is_none() {
            source.principal = callee.and_then(|c| c.source_principal.clone());
        }
        let destination = match callee {
            Some(c) => {
                let mut d = c.workload.clone();
                if d.principal.is_none() {
                    d.principal = caller.destination_principal.clone();
                }
                d
            }
            None => caller
                .peer
                .clone()
                .or_else(|| {
                    caller
                        .destination_principal
                        .as_deref()
                        .and_then(principal_workload)
                })
                .unwrap_or_else(|| Workload::new("unknown")),
        };
        let callee_route = callee.and_then(|c| c.route.clone().map(|r| (c.method.clone(), r)));
        let protocol = match (caller.protocol, callee.map(|c| c.protocol)) {
            (Protocol::Tcp, Some(p)) => p,
            (p, _) => p,
        };
        let (method, route) = match (caller.route.clone(), callee_route) {
            // The server side knows its route template (`http.route`) best.
            (_, Some((m, r))) if callee.is_some_and(|c| c.protocol == protocol) => (m, r),
            (Some(r), _) => (caller.method.clone(), r),
            (None, Some((m, r))) => (m, r),
            (None, None) => (caller.method.clone(), default_route(caller)),
        };
        let route = self.routes.admit(&source.key(), &destination.key(), route);
        Call {
            event_time_ns: caller.start_ns,
            source,
            destination,
            protocol,
            method,
            route,
            status: caller.status.or_else(|| callee.and_then(|c| c.status)),
            error: caller.error || callee.is_some_and(|c| c.error),
            duration_ns: caller.duration_ns,
            mtls: caller.mtls.or_else(|| callee.and_then(|c| c.mtls)),
            trace_id: caller.trace_id.clone(),
            span_id: caller.span_id.clone(),
            entry: None,
            response_flags: caller
                .response_flags
                .clone()
                .or_else(|| callee.and_then(|c| c.response_flags.clone())),
            destination_address: caller.destination_address.clone(),
            source_version: caller.version.clone(),
            request_id: caller
                .request_id
                .clone()
                .or_else(|| callee.and_then(|c| c.request_id.clone())),
            weight: caller.weight,
        }
    }

    fn build_unknown_caller_call(&mut self, callee: &SpanInfo) -> Call {
        let source = callee
            .source_principal
            .as_deref()
            .and_then(principal_workload)
            .unwrap_or_else(|| Workload::new("unknown"));
        let route = callee
            .route
            .clone()
            .unwrap_or_else(|| default_route(callee));
        let route = self
            .routes
            .admit(&source.key(), &callee.workload.key(), route);
        Call {
            event_time_ns: callee.start_ns,
            source,
            destination: callee.workload.clone(),
            protocol: callee.protocol,
            method: callee.method.clone(),
            route,
            status: callee.status,
            error: callee.error,
            duration_ns: callee.duration_ns,
            mtls: callee.mtls,
            trace_id: callee.trace_id.clone(),
            span_id: callee.parent_id.clone(),
            entry: None,
            response_flags: callee.response_flags.clone(),
            destination_address: None,
            source_version: None,
            request_id: callee.request_id.clone(),
            weight: callee.weight,
        }
    }

    /// A server span may be (or improve the guess of) the trace's root server span.
    fn note_entry_candidate(&mut self, info: &SpanInfo, out: &mut Vec<Call>) {
        if !self.traces.contains_key(&info.trace_id) && self.traces.len() >= self.config.max_traces
        {
            return;
        }
        let trace = self
            .traces
            .entry(info.trace_id.clone())
            .or_insert_with(|| TraceEntry {
                best_start_ns: i64::MAX,
                ..Default::default()
            });
        trace.last_ns = trace.last_ns.max(info.start_ns);
        if trace.definitive {
            return;
        }
        let root = info.parent_id.is_empty();
        if root || info.start_ns < trace.best_start_ns {
            trace.best_start_ns = info.start_ns;
            trace.entry = Some(Entry {
                service: info.workload.service.clone(),
                route: info.entry_route(),
            });
        }
        if root {
            trace.definitive = true;
            let entry = trace.entry.clone();
            for mut call in trace.waiting.drain(..) {
                call.entry = entry.clone();
                out.push(call);
            }
        }
    }

    fn complete(&mut self, mut call: Call, out: &mut Vec<Call>) {
        let tracked =
            self.traces.contains_key(&call.trace_id) || self.traces.len() < self.config.max_traces;
        if !tracked {
            self.stats.traces_untracked += 1;
            out.push(call);
            return;
        }
        let trace = self
            .traces
            .entry(call.trace_id.clone())
            .or_insert_with(|| TraceEntry {
                best_start_ns: i64::MAX,
                ..Default::default()
            });
        trace.last_ns = trace.last_ns.max(call.event_time_ns);
        if trace.definitive {
            call.entry = trace.entry.clone();
            out.push(call);
        } else {
            trace.waiting.push(call);
        }
    }

    /// Releases waiting calls whose entry wait is over (all of them when `watermark`
    /// is `None`) and forgets idle traces.
    fn release_waiting(&mut self, watermark_ns: Option<i64>, out: &mut Vec<Call>) {
        let wait = self.config.entry_wait.as_nanos() as i64;
        let keep_for = wait + 2 * self.config.pairing_ttl.as_nanos() as i64;
        self.traces.retain(|_, trace| {
            let due = |t: i64| watermark_ns.is_none_or(|wm| t.saturating_add(wait) <= wm);
            if trace.waiting.iter().any(|c| due(c.event_time_ns)) {
                let entry = trace.entry.clone();
                let (ready, still): (Vec<Call>, Vec<Call>) =
                    trace.waiting.drain(..).partition(|c| due(c.event_time_ns));
                trace.waiting = still;
                for mut call in ready {
                    call.entry = entry.clone();
                    out.push(call);
                }
            }
            match watermark_ns {
                None => false,
                Some(wm) => {
                    !trace.waiting.is_empty() || trace.last_ns.saturating_add(keep_for) > wm
                }
            }
        });
    }
}

fn default_route(info: &SpanInfo) -> String {
    match info.protocol {
        Protocol::Http => "/".into(),
        _ => "*".into(),
    }
}
