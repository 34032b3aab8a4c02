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

use eastwest_model::{Call, Entry};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Serialize;

use super::Hasher;
use super::NormalizerConfig;
use super::batch::SpanBatch;
use super::info::{Side, SpanInfo};
use super::markers::{Due, Key, Markers};
use super::naming::Naming;
use crate::dedup::CallOrigin;
use crate::time_queue::TimeQueue;

/// Which table a pending side waits in: callers under (trace, span id), callees under
/// (trace, parent id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Caller,
    Callee,
}

/// Sides due at a time, earliest first (ties in scheduling order: the sequence number
/// is unique).
#[derive(Debug, Default)]
struct Timers(TimeQueue<(u64, Slot, Key)>);

/// Event times counted per granule of 2^24 ns (about 17 ms): how many sides are pending
/// or calls waiting, and a lower bound of the earliest. Counted per granule, the map
/// has a few hundred keys that stay in cache however many sides are pending (per
/// nanosecond it had one key per side, each insert and remove a walk through cold
/// nodes). The earliest is rounded down to its granule, which only ever holds the
/// release point back a little longer, never lets a call through early.
#[derive(Debug, Default)]
struct TimeCounts(BTreeMap<i64, u32>);

const GRANULE_SHIFT: u32 = 24;

impl TimeCounts {
    fn add(&mut self, time_ns: i64) {
        *self.0.entry(time_ns >> GRANULE_SHIFT).or_insert(0) += 1;
    }

    /// Forgets one count of `time_ns` (one that was added).
    fn remove(&mut self, time_ns: i64) {
        let granule = time_ns >> GRANULE_SHIFT;
        if let Some(n) = self.0.get_mut(&granule) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&granule);
            }
        }
    }

    /// At most the earliest time counted (the start of its granule).
    fn earliest(&self) -> Option<i64> {
        self.0
            .first_key_value()
            .map(|(granule, _)| granule << GRANULE_SHIFT)
    }

    fn total(&self) -> u64 {
        self.0.values().map(|n| u64::from(*n)).sum()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

impl Timers {
    fn push(&mut self, at_ns: i64, seq: u64, slot: Slot, key: Key) {
        self.0.push(at_ns, (seq, slot, key));
    }

    /// (time, sequence) of the earliest entry.
    fn next_due(&mut self) -> Option<Due> {
        self.0.peek().map(|(at_ns, (seq, _, _))| (at_ns, *seq))
    }

    fn pop(&mut self) -> Option<(Due, Slot, Key)> {
        self.0
            .pop()
            .map(|(at_ns, (seq, slot, key))| ((at_ns, seq), slot, key))
    }
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
    /// Server halves that arrived after their caller had given up and been counted as
    /// a call to a virtual peer (a timeout): not counted again.
    pub late_answers: u64,
    pub route_overflow: u64,
    pub waiting_for_entry: u64,
    /// Calls emitted without entry tracking because `max_traces` was reached.
    pub traces_untracked: u64,
    /// Names held for peer resolution (own names, aliases, pod IPs).
    pub peer_names: u64,
    /// Workloads whose reported route templates are held.
    pub route_templates: u64,
}

#[derive(Debug)]
struct TraceEntry {
    entry: Option<Entry>,
    definitive: bool,
    best_start_ns: i64,
    waiting: Vec<Call>,
    last_ns: i64,
    /// Event time of this trace's live entry in `wakeups` (older entries are stale).
    wake_ns: i64,
}

pub struct SpanNormalizer {
    config: NormalizerConfig,
    /// Boxed: a side is ~600 bytes, moved once into its box instead of in and out of
    /// the table, and the tables stay small.
    callers: HashMap<Key, Box<SpanInfo>, Hasher>,
    callees: HashMap<Key, Box<SpanInfo>, Hasher>,
    /// (trace, span id) of callers with a caller child: layer markers, live until the
    /// child's end plus twice the TTL.
    caller_children: Markers,
    /// (trace, span id) of callees: layer markers, as long.
    callee_ids: Markers,
    /// Callers already emitted unanswered (a timeout), newest last, bounded by
    /// `max_pending_spans`: their server half may still arrive, seconds later, and is
    /// the same call, not one from an unknown caller.
    answered_late: HashSet<Key, Hasher>,
    answered_late_order: std::collections::VecDeque<Key>,
    /// Unpaired sides by expiry: end + pairing TTL. A span is exported when it ends,
    /// so its peer (which ends at about the same time) is due a TTL after that, however
    /// long the call took.
    expiry: Timers,
    /// Start times of the unpaired sides, counted per granule: the event times of the
    /// calls they will become.
    pending_starts: TimeCounts,
    seq: u64,
    traces: HashMap<u128, TraceEntry, Hasher>,
    /// When each trace next needs a look: a waiting call's entry wait ends, or the
    /// trace may have gone idle. Ordered on (event time, trace id), so releases come
    /// in event-time order and `advance` never walks every trace.
    wakeups: TimeQueue<u128>,
    /// Event times of the calls waiting for their entry, counted per granule.
    waiting_times: TimeCounts,
    naming: Naming,
    stats: NormalizerStats,
}

impl SpanNormalizer {
    pub fn new(config: NormalizerConfig) -> Self {
        let naming = Naming::new(&config);
        Self {
            config,
            callers: HashMap::default(),
            callees: HashMap::default(),
            caller_children: Markers::default(),
            callee_ids: Markers::default(),
            answered_late: HashSet::default(),
            answered_late_order: std::collections::VecDeque::new(),
            expiry: Timers::default(),
            pending_starts: TimeCounts::default(),
            seq: 0,
            traces: HashMap::default(),
            wakeups: TimeQueue::default(),
            waiting_times: TimeCounts::default(),
            naming,
            stats: NormalizerStats::default(),
        }
    }

    pub fn stats(&self) -> NormalizerStats {
        let mut s = self.stats;
        s.pending = (self.callers.len() + self.callees.len()) as u64;
        s.waiting_for_entry = self.waiting_times.total();
        s.route_overflow = self.naming.route_overflow();
        (s.peer_names, s.route_templates) = self.naming.table_sizes();
        s
    }

    /// Names an access-log call with what spans taught (see [`Naming::name_logged_call`]).
    pub fn name_logged_call(&mut self, call: &mut Call, origin: CallOrigin) {
        self.naming.name_logged_call(call, origin);
    }

    /// Unpaired sides evicted so far because the store was full.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped
    }

    /// Calls completed by this request.
    pub fn push(&mut self, request: &ExportTraceServiceRequest) -> Vec<Call> {
        self.push_batch(SpanBatch::from_request(request))
    }

    /// Calls completed by these spans (read ahead with [`SpanBatch::from_request`]).
    pub fn push_batch(&mut self, batch: SpanBatch) -> Vec<Call> {
        self.stats.spans_seen += batch.seen;
        self.stats.spans_ignored += batch.ignored;
        let mut out = Vec::new();
        for info in batch.infos {
            self.push_span(info, &mut out);
        }
        out
    }

    /// Expires unpaired sides and releases calls whose entry wait passed `watermark_ns`.
    pub fn advance(&mut self, watermark_ns: i64) -> Vec<Call> {
        let mut out = Vec::new();
        self.expire_through(watermark_ns, &mut out);
        self.wake_traces(watermark_ns, &mut out);
        out
    }

    /// Expires the sides due by `watermark_ns`, in time order, and then the markers.
    fn expire_through(&mut self, watermark_ns: i64, out: &mut Vec<Call>) {
        while self
            .expiry
            .next_due()
            .is_some_and(|(at_ns, _)| at_ns <= watermark_ns)
        {
            if let Some((due, slot, key)) = self.expiry.pop() {
                self.expire(due, slot, key, out);
            }
        }
        self.caller_children.advanced(watermark_ns, self.seq);
        self.callee_ids.advanced(watermark_ns, self.seq);
    }

    /// At most the oldest event time a call released later can have, at `watermark_ns`
    /// (within a granule of [`TimeCounts`]): no waiting call is older, and no pending
    /// side younger than a TTL behind the watermark. `None` when nothing is pending. A
    /// downstream stage that has seen every call before this time has seen all it will,
    /// except calls of sides pending longer than a TTL (long calls): those are late, so
    /// that one slow or forged span can hold back everyone else's calls by a TTL at most.
    pub fn low_watermark(&self, watermark_ns: i64) -> Option<i64> {
        let ttl = self.config.pairing_ttl.as_nanos().min(i64::MAX as u128) as i64;
        let side = self
            .pending_starts
            .earliest()
            .map(|start| start.max(watermark_ns.saturating_sub(ttl)));
        let waiting = self.waiting_times.earliest();
        match (side, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Shutdown: everything pending becomes a call now.
    pub fn flush(&mut self) -> Vec<Call> {
        let mut out = Vec::new();
        self.expire_through(i64::MAX, &mut out);
        for (_, mut trace) in self.traces.drain() {
            release_due(&mut trace, |_| true, &mut out);
        }
        self.wakeups.clear();
        self.waiting_times.clear();
        self.pending_starts.clear();
        out
    }

    fn note_pending(&mut self, start_ns: i64) {
        self.pending_starts.add(start_ns);
    }

    /// A side left the store (paired, expired or evicted).
    fn forget_pending(&mut self, info: &SpanInfo) {
        self.pending_starts.remove(info.start_ns);
    }

    /// When a side's span ended (for pairing purposes): a duration longer than
    /// `max_call_duration` counts as that long, so no span can stay pending forever.
    fn end_ns(&self, info: &SpanInfo) -> i64 {
        let cap = self
            .config
            .max_call_duration
            .as_nanos()
            .min(i64::MAX as u128) as u64;
        info.start_ns
            .saturating_add(info.duration_ns.min(cap).min(i64::MAX as u64) as i64)
    }

    fn schedule(&mut self, at_ns: i64, slot: Slot, key: Key) {
        self.seq += 1;
        self.expiry.push(at_ns, self.seq, slot, key);
    }

    /// Bookkeeping for calls that stopped waiting for their entry.
    fn forget_waiting(&mut self, released: &[Call]) {
        for c in released {
            self.waiting_times.remove(c.event_time_ns);
        }
    }

    fn push_span(&mut self, mut info: SpanInfo, out: &mut Vec<Call>) {
        let ttl = self.config.pairing_ttl.as_nanos().min(i64::MAX as u128) as i64;
        let (start, end) = (info.start_ns, self.end_ns(&info));
        self.naming.learn(&info);
        match info.side {
            Side::Callee => {
                self.note_entry_candidate(&info, out);
                self.callee_ids.set(
                    (info.trace_id, info.span_id),
                    end.saturating_add(ttl.saturating_mul(2)),
                    &mut self.seq,
                );
                // A root server span has no caller to pair with: it only names the entry.
                let Some(parent) = info.parent_id else {
                    return;
                };
                let key = (info.trace_id, parent);
                if let Some(mut caller) = self.callers.remove(&key) {
                    self.forget_pending(&caller);
                    self.stats.paired += 1;
                    let trace_id = info.trace_id;
                    let call = self.naming.build_call(&mut caller, Some(&mut info));
                    self.complete(trace_id, call, out);
                } else if self.answered_late.remove(&key) {
                    // The caller gave up and its call was counted; this is its answer.
                    self.stats.late_answers += 1;
                } else {
                    self.make_room();
                    if self.callees.insert(key, Box::new(info)).is_none() {
                        self.note_pending(start);
                        self.schedule(end.saturating_add(ttl), Slot::Callee, key);
                    }
                }
            }
            Side::Caller => {
                if let Some(parent) = info.parent_id {
                    self.caller_children.set(
                        (info.trace_id, parent),
                        end.saturating_add(ttl.saturating_mul(2)),
                        &mut self.seq,
                    );
                }
                let key = (info.trace_id, info.span_id);
                if let Some(mut callee) = self.callees.remove(&key) {
                    self.forget_pending(&callee);
                    self.stats.paired += 1;
                    let trace_id = info.trace_id;
                    let call = self.naming.build_call(&mut info, Some(&mut callee));
                    self.complete(trace_id, call, out);
                } else {
                    self.make_room();
                    if self.callers.insert(key, Box::new(info)).is_none() {
                        self.note_pending(start);
                        self.schedule(end.saturating_add(ttl), Slot::Caller, key);
                    }
                }
            }
        }
    }

    fn remember_unanswered(&mut self, key: Key) {
        if self.answered_late.insert(key) {
            self.answered_late_order.push_back(key);
        }
        while self.answered_late_order.len() > self.config.max_pending_spans {
            if let Some(old) = self.answered_late_order.pop_front() {
                self.answered_late.remove(&old);
            }
        }
    }

    /// Evicts the oldest pending side when the store is full.
    fn make_room(&mut self) {
        while self.callers.len() + self.callees.len() >= self.config.max_pending_spans {
            let Some((_, slot, key)) = self.expiry.pop() else {
                return;
            };
            let removed = match slot {
                Slot::Caller => self.callers.remove(&key),
                _ => self.callees.remove(&key),
            };
            if let Some(info) = removed {
                self.forget_pending(&info);
                self.stats.dropped += 1;
            }
        }
    }

    fn expire(&mut self, due: Due, slot: Slot, key: Key, out: &mut Vec<Call>) {
        match slot {
            Slot::Caller => {
                let Some(mut caller) = self.callers.remove(&key) else {
                    return;
                };
                self.forget_pending(&caller);
                if self.caller_children.live_at(&key, due) {
                    self.stats.layers_collapsed += 1;
                    return;
                }
                self.stats.virtual_peers += 1;
                self.remember_unanswered(key);
                let trace_id = caller.trace_id;
                let call = self.naming.build_call(&mut caller, None);
                self.complete(trace_id, call, out);
            }
            Slot::Callee => {
                let Some(mut callee) = self.callees.remove(&key) else {
                    return;
                };
                self.forget_pending(&callee);
                // key = (trace, parent id): a parent that is itself a callee means this
                // is the app layer behind a sidecar's server span.
                if self.callee_ids.live_at(&key, due) {
                    self.stats.layers_collapsed += 1;
                    return;
                }
                self.stats.virtual_peers += 1;
                let trace_id = callee.trace_id;
                let call = self.naming.build_unknown_caller_call(&mut callee);
                self.complete(trace_id, call, out);
            }
        }
    }

    /// The trace's bookkeeping, created (with its idle wake-up) unless `max_traces`
    /// traces are tracked already.
    fn trace_mut(&mut self, trace_id: u128, event_ns: i64) -> Option<&mut TraceEntry> {
        if !self.traces.contains_key(&trace_id) {
            if self.traces.len() >= self.config.max_traces {
                return None;
            }
            let wake_ns = event_ns.saturating_add(self.keep_trace_ns());
            self.wakeups.push(wake_ns, trace_id);
            self.traces.insert(
                trace_id,
                TraceEntry {
                    entry: None,
                    definitive: false,
                    best_start_ns: i64::MAX,
                    waiting: Vec::new(),
                    last_ns: event_ns,
                    wake_ns,
                },
            );
        }
        let trace = self.traces.get_mut(&trace_id)?;
        trace.last_ns = trace.last_ns.max(event_ns);
        Some(trace)
    }

    /// How long a call waits for its trace's root server span (the entry).
    fn entry_wait_ns(&self) -> i64 {
        self.config.entry_wait.as_nanos().min(i64::MAX as u128) as i64
    }

    /// How long a trace with nothing waiting is remembered after its last span.
    fn keep_trace_ns(&self) -> i64 {
        (self.config.entry_wait.as_nanos() + 2 * self.config.pairing_ttl.as_nanos())
            .min(i64::MAX as u128) as i64
    }

    /// A server span may be (or improve the guess of) the trace's root server span.
    fn note_entry_candidate(&mut self, info: &SpanInfo, out: &mut Vec<Call>) {
        let Some(trace) = self.trace_mut(info.trace_id, info.start_ns) else {
            return;
        };
        if trace.definitive {
            return;
        }
        let root = info.parent_id.is_none();
        let better = root || info.start_ns < trace.best_start_ns;
        let entry_route = better.then(|| self.naming.entry_route(info));
        let Some(trace) = self.traces.get_mut(&info.trace_id) else {
            return;
        };
        if let Some(route) = entry_route {
            trace.best_start_ns = info.start_ns;
            trace.entry = Some(Entry {
                service: info.workload.service.clone(),
                route,
            });
        }
        if root {
            trace.definitive = true;
            let before = out.len();
            release_due(trace, |_| true, out);
            self.forget_waiting(&out[before..]);
        }
    }

    fn complete(&mut self, trace_id: u128, mut call: Call, out: &mut Vec<Call>) {
        let wait_ns = self.entry_wait_ns();
        let Some(trace) = self.trace_mut(trace_id, call.event_time_ns) else {
            self.stats.traces_untracked += 1;
            out.push(call);
            return;
        };
        if trace.definitive {
            call.entry = trace.entry.clone();
            out.push(call);
            return;
        }
        let t = call.event_time_ns;
        let due = t.saturating_add(wait_ns);
        trace.waiting.push(call);
        let wake_earlier = due < trace.wake_ns;
        if wake_earlier {
            trace.wake_ns = due;
            self.wakeups.push(due, trace_id);
        }
        self.waiting_times.add(t);
    }

    /// Releases waiting calls whose entry wait ended by `watermark_ns` and forgets
    /// traces idle since; only traces with a wake-up due are looked at.
    fn wake_traces(&mut self, watermark_ns: i64, out: &mut Vec<Call>) {
        let wait_ns = self.entry_wait_ns();
        let keep_ns = self.keep_trace_ns();
        let guess_entry = self.config.guess_entry;
        while let Some((wake_ns, &trace_id)) = self.wakeups.peek() {
            if wake_ns > watermark_ns {
                break;
            }
            self.wakeups.pop();
            let Some(trace) = self.traces.get_mut(&trace_id) else {
                continue;
            };
            if trace.wake_ns != wake_ns {
                continue; // superseded by an earlier wake-up
            }
            let due = |t: i64| t.saturating_add(wait_ns) <= watermark_ns;
            let before = out.len();
            // Released without the root: the entry is only a guess, kept if configured.
            let entry = trace.entry.take();
            trace.entry = entry.clone().filter(|_| guess_entry);
            release_due(trace, due, out);
            trace.entry = entry;
            let trace_idle = trace.waiting.is_empty();
            let idle_at = trace.last_ns.saturating_add(keep_ns);
            let next_due = trace
                .waiting
                .iter()
                .map(|c| c.event_time_ns.saturating_add(wait_ns))
                .min();
            self.forget_waiting(&out[before..]);
            if trace_idle && idle_at <= watermark_ns {
                self.traces.remove(&trace_id);
                continue;
            }
            // Something still waits: its due time (after the watermark). Else: idle_at.
            let next = next_due.unwrap_or(idle_at);
            if let Some(trace) = self.traces.get_mut(&trace_id) {
                trace.wake_ns = next;
            }
            self.wakeups.push(next, trace_id);
        }
    }
}

/// Moves the trace's waiting calls that are `due` (by event time) to `out` with the
/// trace's best entry so far.
fn release_due(trace: &mut TraceEntry, due: impl Fn(i64) -> bool, out: &mut Vec<Call>) {
    // In place: the calls that keep waiting are not moved into a new vector.
    for mut call in trace.waiting.extract_if(.., |c| due(c.event_time_ns)) {
        call.entry = trace.entry.clone();
        out.push(call);
    }
}
