//! What the API reads, published by the pipeline: immutable views swapped in whole
//! (`arc-swap`), so a reader never holds a lock the pipeline needs and the pipeline never
//! waits for a reader. What the API asks the pipeline to do goes the other way, as
//! [`Command`]s.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use eastwest_api::EndpointSummary;
use eastwest_baseline::{BaselineStatus, EdgeStats, LearningState};
use eastwest_detector::Engine;
use eastwest_model::{Alert, Call, CompactString, Protocol};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub const RECENT_CALLS: usize = 1000;
pub const TRACE_IDS_PER_EDGE: usize = 5;
/// An edge's example trace ids take a new one at most this often (event time): a trace
/// id per call would be a copy per call, and examples a second apart show more of the
/// edge's traffic than the last five calls of one burst.
pub const TRACE_EXAMPLE_INTERVAL_NS: i64 = 1_000_000_000;
/// Distinct edges and workloads remembered for the graph (attacker-controlled names).
pub const MAX_EDGE_EXAMPLES: usize = 50_000;
/// Commands waiting for the pipeline.
pub const COMMAND_QUEUE: usize = 64;

/// (source key, destination key).
pub type EdgeNames = (CompactString, CompactString);

/// The live view's maps: looked up several times per call, keyed by names telemetry
/// chose (a seeded hash, faster than the default one).
pub type LiveMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

const PROTOCOLS: [Protocol; 5] = [
    Protocol::Http,
    Protocol::Grpc,
    Protocol::Db,
    Protocol::Messaging,
    Protocol::Tcp,
];

/// The bit of `protocol` in [`LiveEdge::protocols`].
pub fn protocol_bit(protocol: Protocol) -> u8 {
    1 << PROTOCOLS.iter().position(|p| *p == protocol).unwrap_or(0)
}

/// The protocols a [`LiveEdge::protocols`] mask names.
pub fn protocols_of(mask: u8) -> Vec<Protocol> {
    PROTOCOLS
        .into_iter()
        .filter(|p| mask & protocol_bit(*p) != 0)
        .collect()
}

/// Traffic on one edge since start (sampling-weighted).
#[derive(Debug, Clone, Default)]
pub struct LiveEdge {
    pub calls: f64,
    pub errors: f64,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub mtls_calls: f64,
    pub plaintext_calls: f64,
    /// The protocols its calls used, one bit each ([`protocol_bit`]), for the graph's
    /// protocol filter.
    pub protocols: u8,
    /// Example trace ids, newest last, at most [`TRACE_IDS_PER_EDGE`], taken at least
    /// [`TRACE_EXAMPLE_INTERVAL_NS`] apart.
    pub trace_ids: VecDeque<CompactString>,
    /// Event time of the newest example.
    pub trace_example_ns: i64,
}

/// What traffic showed, alerted calls included (the baseline never learns those): the
/// graph shows what happened, not only what is normal.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    /// The engine's event time (0 before the first release).
    pub watermark_ns: i64,
    /// Calls that reached the pipeline after event time had passed them.
    pub late_calls: u64,
    /// Calls waiting for the watermark before they go to the engine.
    pub buffered_calls: u64,
    /// Shared with the history writer: a publish copies pointers, not calls.
    pub recent_calls: Arc<VecDeque<Arc<Call>>>,
    pub edges: Arc<LiveMap<EdgeNames, LiveEdge>>,
    /// Workload key → (service, namespace), for graph nodes.
    pub workloads: Arc<LiveMap<CompactString, (CompactString, Option<CompactString>)>>,
}

/// The learned baseline as the API shows it.
#[derive(Debug, Clone, Default)]
pub struct BaselineView {
    pub status: Option<BaselineStatus>,
    /// When detection started (event time), if it has.
    pub detecting_since: Option<i64>,
    pub edges: HashMap<EdgeNames, EdgeStats>,
    /// Learned endpoints per edge.
    pub endpoints: HashMap<EdgeNames, Vec<EndpointSummary>>,
    pub endpoint_count: usize,
}

fn time(ns: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(ns)
}

impl BaselineView {
    pub fn of(engine: &Engine, watermark_ns: i64) -> Self {
        let baseline = engine.baseline();
        let index = baseline.working();
        let edges = index
            .edges()
            .map(|(k, s)| {
                let names = (
                    index.name(k.source).into(),
                    index.name(k.destination).into(),
                );
                (names, s.clone())
            })
            .collect();
        let mut endpoints: HashMap<EdgeNames, Vec<EndpointSummary>> = HashMap::new();
        for (k, s) in index.endpoints() {
            let edge = (
                index.name(k.edge.source).into(),
                index.name(k.edge.destination).into(),
            );
            endpoints.entry(edge).or_default().push(EndpointSummary {
                method: index.name(k.method).to_owned(),
                route: index.name(k.route).to_owned(),
                calls: s.calls,
                errors: s.errors,
                first_seen: time(s.first_seen_ns),
                last_seen: time(s.last_seen_ns),
            });
        }
        Self {
            status: Some(baseline.status(watermark_ns)),
            detecting_since: match baseline.state() {
                LearningState::Detecting { since_ns, .. } => Some(since_ns),
                _ => None,
            },
            edges,
            endpoints,
            endpoint_count: index.endpoint_count(),
        }
    }
}

/// What the API asks of the pipeline.
#[derive(Debug)]
pub enum Command {
    /// The operator says this alert's call is expected: learn it.
    Accept(Box<Alert>),
    /// End learning now; the new status comes back.
    EndLearning(std::sync::mpsc::SyncSender<BaselineStatus>),
}

/// The views, the command queue into the pipeline, and stage health.
pub struct Published {
    pub live: ArcSwap<LiveView>,
    pub baseline: ArcSwap<BaselineView>,
    pub commands: mpsc::Sender<Command>,
    /// The stage that stopped on its own, if one did (then the process is not ready).
    failed_stage: Mutex<Option<&'static str>>,
}

impl Published {
    pub fn new() -> (Arc<Self>, mpsc::Receiver<Command>) {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let published = Arc::new(Self {
            live: ArcSwap::from_pointee(LiveView::default()),
            baseline: ArcSwap::from_pointee(BaselineView::default()),
            commands,
            failed_stage: Mutex::new(None),
        });
        (published, rx)
    }

    pub fn fail(&self, stage: &'static str) {
        self.failed_stage.lock().get_or_insert(stage);
    }

    pub fn ready(&self) -> bool {
        self.failed_stage.lock().is_none()
    }
}

/// The live view is published at most this often. Maps are shared with the published
/// view and copied on the first write after a publish: on a mesh with tens of thousands
/// of edges, a copy per input batch would cost more than the batch.
pub const LIVE_VIEW_INTERVAL: Duration = Duration::from_millis(200);

/// The pipeline's own, mutable copy of what [`LiveView`] shows.
#[derive(Debug, Default)]
pub struct LiveState {
    view: LiveView,
    dirty: bool,
    published_at: Option<Instant>,
}

/// The event clock's counters the live view shows.
#[derive(Debug, Clone, Copy)]
pub struct LiveCounters {
    pub watermark_ns: i64,
    pub late_calls: u64,
    pub buffered_calls: u64,
}

impl LiveState {
    /// Keeps the newest [`RECENT_CALLS`] of `calls` (in order) among the recent ones:
    /// only those are kept, however large the release.
    pub fn remember_recent(&mut self, calls: &[(Arc<Call>, bool)]) {
        let newest = &calls[calls.len().saturating_sub(RECENT_CALLS)..];
        if newest.is_empty() {
            return;
        }
        self.dirty = true;
        let recent = Arc::make_mut(&mut self.view.recent_calls);
        let room = RECENT_CALLS - newest.len();
        if recent.len() > room {
            recent.drain(..recent.len() - room);
        }
        recent.extend(newest.iter().map(|(c, _)| c.clone()));
    }

    /// Counts a call on its edge and remembers its workloads and an example trace id.
    /// The edge key is hashed once for an edge already known; it and the workload keys
    /// are copied only into a map that does not hold them yet.
    pub fn remember(&mut self, call: &Call, key: &EdgeNames) {
        self.dirty = true;
        let view = &mut self.view;
        let edges = Arc::make_mut(&mut view.edges);
        let t = call.event_time_ns;
        let edge = match edges.get_mut(key) {
            Some(edge) => edge,
            None => {
                // A workload is new only on an edge that is new (or was never counted
                // because the map is full).
                let workloads = Arc::make_mut(&mut view.workloads);
                for (w, k) in [(&call.source, &key.0), (&call.destination, &key.1)] {
                    if workloads.len() < MAX_EDGE_EXAMPLES && !workloads.contains_key(k) {
                        workloads.insert(k.clone(), (w.service.clone(), w.namespace.clone()));
                    }
                }
                if edges.len() >= MAX_EDGE_EXAMPLES {
                    return;
                }
                edges.entry(key.clone()).or_insert_with(|| LiveEdge {
                    first_seen_ns: t,
                    last_seen_ns: t,
                    trace_example_ns: i64::MIN,
                    ..Default::default()
                })
            }
        };
        let w = call.sampling_weight();
        edge.calls += w;
        edge.errors += if call.error { w } else { 0.0 };
        edge.first_seen_ns = edge.first_seen_ns.min(t);
        edge.last_seen_ns = edge.last_seen_ns.max(t);
        edge.protocols |= protocol_bit(call.protocol);
        match call.mtls {
            Some(true) => edge.mtls_calls += w,
            Some(false) => edge.plaintext_calls += w,
            None => {}
        }
        let example_due = edge.trace_ids.len() < TRACE_IDS_PER_EDGE
            || t >= edge
                .trace_example_ns
                .saturating_add(TRACE_EXAMPLE_INTERVAL_NS);
        if call.trace_id.is_empty() || !example_due || edge.trace_ids.contains(&call.trace_id) {
            return;
        }
        if edge.trace_ids.len() == TRACE_IDS_PER_EDGE {
            edge.trace_ids.pop_front();
        }
        edge.trace_ids.push_back(call.trace_id.clone());
        edge.trace_example_ns = edge.trace_example_ns.max(t);
    }

    /// Sets the counters; publishes the view when anything changed since the last time
    /// and the last publication is [`LIVE_VIEW_INTERVAL`] old (or `now` is set).
    pub fn publish(&mut self, to: &Published, counters: LiveCounters, now: bool) {
        let view = &mut self.view;
        let LiveCounters {
            watermark_ns,
            late_calls,
            buffered_calls,
        } = counters;
        if (view.watermark_ns, view.late_calls, view.buffered_calls)
            != (watermark_ns, late_calls, buffered_calls)
        {
            (view.watermark_ns, view.late_calls, view.buffered_calls) =
                (watermark_ns, late_calls, buffered_calls);
            self.dirty = true;
        }
        let due = now
            || self
                .published_at
                .is_none_or(|at| at.elapsed() >= LIVE_VIEW_INTERVAL);
        if self.dirty && due {
            self.dirty = false;
            self.published_at = Some(Instant::now());
            to.live.store(Arc::new(self.view.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(from: i64, n: i64) -> Vec<(Arc<Call>, bool)> {
        (from..from + n)
            .map(|t| {
                let call = Call {
                    event_time_ns: t,
                    ..Default::default()
                };
                (Arc::new(call), true)
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_live_view_is_published_at_most_once_per_interval_unless_asked() {
        let (published, _commands) = Published::new();
        let mut live = LiveState::default();
        let counters = |late_calls| LiveCounters {
            watermark_ns: 1,
            late_calls,
            buffered_calls: 0,
        };
        let late = || published.live.load().late_calls;
        live.publish(&published, counters(1), false);
        assert_eq!(late(), 1, "the first change is published at once");
        live.publish(&published, counters(2), false);
        assert_eq!(late(), 1, "within the interval: held back");
        tokio::time::advance(LIVE_VIEW_INTERVAL).await;
        live.publish(&published, counters(2), false);
        assert_eq!(
            late(),
            2,
            "a held-back change goes out once the interval passed"
        );
        live.publish(&published, counters(3), true);
        assert_eq!(late(), 3, "asked for: at once");
    }

    #[test]
    fn recent_calls_are_the_newest_in_order_whatever_the_release_sizes() {
        let mut live = LiveState::default();
        live.remember_recent(&calls(0, 10));
        live.remember_recent(&calls(10, RECENT_CALLS as i64 - 5));
        live.remember_recent(&[]);
        let times = |l: &LiveState| -> Vec<i64> {
            l.view
                .recent_calls
                .iter()
                .map(|c| c.event_time_ns)
                .collect()
        };
        let expected: Vec<i64> = (5..RECENT_CALLS as i64 + 5).collect();
        assert_eq!(times(&live), expected);
        // A release larger than the ring replaces it with its own newest calls.
        live.remember_recent(&calls(5_000, 2 * RECENT_CALLS as i64));
        let expected: Vec<i64> =
            (5_000 + RECENT_CALLS as i64..5_000 + 2 * RECENT_CALLS as i64).collect();
        assert_eq!(times(&live), expected);
    }

    #[test]
    fn an_edge_keeps_distinct_trace_examples_at_least_an_interval_apart() {
        let mut live = LiveState::default();
        let key: EdgeNames = ("a".into(), "b".into());
        let call = |t: i64, trace: &str| Call {
            event_time_ns: t,
            trace_id: trace.into(),
            source: eastwest_model::Workload::new("a"),
            destination: eastwest_model::Workload::new("b"),
            ..Default::default()
        };
        let second = TRACE_EXAMPLE_INTERVAL_NS;
        // The first examples are taken as they come, a repeated id once.
        for (i, trace) in ["t0", "t0", "t1", "t2", "t3", "t4"].iter().enumerate() {
            live.remember(&call(i as i64, trace), &key);
        }
        // Full: a call within the interval of the newest example gives none.
        live.remember(&call(second / 2, "early"), &key);
        live.remember(&call(5 + second, "late"), &key);
        let edge = &live.view.edges[&key];
        let ids: Vec<&str> = edge.trace_ids.iter().map(|t| t.as_str()).collect();
        assert_eq!(ids, ["t1", "t2", "t3", "t4", "late"]);
        assert_eq!(edge.calls, 8.0, "every call is counted, example or not");
        assert_eq!(live.view.workloads.len(), 2);
    }
}
