//! The event-time driver: the one place that decides what time it is.
//!
//! Input moves the *input watermark* (newest accepted event time − allowed lateness,
//! never past the wall clock). The extractor holds calls back while their pairs and
//! entries complete, so the *release point* is the lower of the input watermark and the
//! oldest call the extractor may still release. Calls wait here, in a buffer ordered by
//! event time and a fixed tie-break, until the release point passes them; the engine
//! therefore sees every call in the same order, whatever the pace, batching, transport
//! or stream count of the input, as long as records arrive within the allowed lateness.
//! A call older than the release point when it shows up is *late*: counted and handed on
//! at once.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use eastwest_collector::TimeQueue;
use eastwest_model::Call;

fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// Event time, then fields that tell calls apart, so equal times never fall back to
/// arrival order.
pub fn call_order(a: &Call, b: &Call) -> Ordering {
    fn key(c: &Call) -> (i64, &str, &str, &str, &str, &str, &str) {
        (
            c.event_time_ns,
            c.trace_id.as_str(),
            c.span_id.as_str(),
            c.source.service.as_str(),
            c.destination.service.as_str(),
            c.method.as_str(),
            c.route.as_str(),
        )
    }
    key(a)
        .cmp(&key(b))
        .then_with(|| a.source.namespace.cmp(&b.source.namespace))
        .then_with(|| a.destination.namespace.cmp(&b.destination.namespace))
        .then_with(|| a.status.cmp(&b.status))
}

/// A buffered call, shared: what leaves the buffer is shared by the engine's consumers
/// (the recent-calls view, the history) as it is. The buffer keys it by event time;
/// this order breaks ties.
#[derive(Debug)]
struct Buffered(Arc<Call>);

impl PartialEq for Buffered {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Buffered {}

impl PartialOrd for Buffered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Buffered {
    fn cmp(&self, other: &Self) -> Ordering {
        call_order(&self.0, &other.0)
    }
}

/// Watermarks and the reorder buffer. Pure: the caller supplies wall-clock readings, so
/// tests drive it with any clock.
#[derive(Debug)]
pub struct EventClock {
    lateness_ns: i64,
    idle_advance: Duration,
    /// Newest accepted event time (0 before the first).
    max_event_ns: i64,
    /// Input watermark as last computed (0 before the first event).
    input_ns: i64,
    /// Every call older than this has been handed on.
    released_ns: i64,
    buffer: TimeQueue<Buffered>,
    late_calls: u64,
}

impl EventClock {
    pub fn new(allowed_lateness: Duration, idle_advance: Duration) -> Self {
        Self {
            lateness_ns: nanos(allowed_lateness),
            idle_advance,
            max_event_ns: 0,
            input_ns: 0,
            released_ns: i64::MIN,
            buffer: TimeQueue::default(),
            late_calls: 0,
        }
    }

    /// Notes input stamped up to `max_event_ns`, at wall time `wall_ns`. Receivers have
    /// already refused records far ahead of the clock; those slightly ahead still never
    /// take the watermark past the wall clock, so they cannot make today's input late.
    pub fn observe_input(&mut self, max_event_ns: i64, wall_ns: i64) {
        let capped = max_event_ns.min(wall_ns.saturating_add(self.lateness_ns));
        self.max_event_ns = self.max_event_ns.max(capped);
        self.input_ns = self
            .input_ns
            .max(self.max_event_ns.saturating_sub(self.lateness_ns));
    }

    /// After `idle` wall time without input, event time is taken to follow the wall
    /// clock from where input stopped: the watermark moves on by what exceeds
    /// `idle_advance`, so pending pairs expire and the last windows close. Before the
    /// first event there is nothing to advance (learning must start at a call).
    pub fn observe_idle(&mut self, idle: Duration, wall_ns: i64) {
        if self.max_event_ns == 0 {
            return;
        }
        let beyond = nanos(idle.saturating_sub(self.idle_advance));
        if beyond == 0 {
            return;
        }
        let idle_ns = self
            .max_event_ns
            .saturating_sub(self.lateness_ns)
            .saturating_add(beyond)
            .min(wall_ns.max(self.max_event_ns));
        self.input_ns = self.input_ns.max(idle_ns);
    }

    /// 0 before the first event.
    pub fn input_watermark(&self) -> i64 {
        self.input_ns
    }

    pub fn max_event_ns(&self) -> i64 {
        self.max_event_ns
    }

    /// The engine's event time: every call before it has been handed on.
    pub fn released(&self) -> Option<i64> {
        (self.released_ns != i64::MIN).then_some(self.released_ns)
    }

    pub fn late_calls(&self) -> u64 {
        self.late_calls
    }

    /// Calls waiting for the release point.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Buffers `calls`; returns those already behind the release point (late), which
    /// go on at once in event-time order.
    pub fn admit(&mut self, calls: Vec<Call>) -> Vec<Arc<Call>> {
        let mut late = Vec::new();
        for call in calls {
            if call.event_time_ns < self.released_ns {
                late.push(Arc::new(call));
            } else {
                self.buffer
                    .push(call.event_time_ns, Buffered(Arc::new(call)));
            }
        }
        self.late_calls += late.len() as u64;
        late.sort_by(|a, b| call_order(a, b));
        late
    }

    /// Moves the release point to `point` (never back) and returns, in order, every
    /// buffered call before it.
    pub fn release(&mut self, point: i64) -> Vec<Arc<Call>> {
        if point > self.released_ns {
            self.released_ns = point;
        }
        let mut out = Vec::new();
        while let Some((event_time_ns, _)) = self.buffer.peek() {
            if event_time_ns >= self.released_ns {
                break;
            }
            let (_, Buffered(call)) = self.buffer.pop().expect("peeked");
            out.push(call);
        }
        out
    }

    /// End of input: everything buffered, in order; the release point moves past it.
    pub fn release_all(&mut self) -> Vec<Arc<Call>> {
        let newest = self.buffer.max_time().unwrap_or(self.released_ns);
        self.release(newest.saturating_add(1))
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
