//! One request seen twice — as a span pair and as an access-log line, or as the caller's
//! outbound and the callee's inbound log line — counts once.
//!
//! `x-request-id` is propagated across a whole trace, so it does not identify one call
//! on its own: the key is (request id or trace id, destination, method, route), and a
//! call is a duplicate only when the same key was seen from a *different* origin and
//! not yet matched. Repeated identical calls from one origin (a loop) all count.

use std::collections::{HashMap, VecDeque};

use eastwest_model::Call;

pub const DEFAULT_MAX_DEDUP_KEYS: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOrigin {
    Spans = 0,
    OutboundLog = 1,
    InboundLog = 2,
}

type DedupKey = (String, String, String, String);

#[derive(Debug)]
pub struct CallDeduper {
    unmatched: HashMap<DedupKey, [u32; 3]>,
    order: VecDeque<DedupKey>,
    max_keys: usize,
    pub duplicates: u64,
    pub evicted: u64,
}

impl Default for CallDeduper {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DEDUP_KEYS)
    }
}

impl CallDeduper {
    pub fn new(max_keys: usize) -> Self {
        Self { unmatched: HashMap::new(), order: VecDeque::new(), max_keys: max_keys.max(1), duplicates: 0, evicted: 0 }
    }

    /// True when the call should be counted; false for a duplicate of a call already
    /// admitted from another origin.
    pub fn admit(&mut self, call: &Call, origin: CallOrigin) -> bool {
        let id = call.request_id.clone().filter(|s| !s.is_empty()).or_else(|| {
            (!call.trace_id.is_empty()).then(|| call.trace_id.clone())
        });
        let Some(id) = id else { return true };
        let key = (id, call.destination.key(), call.method.clone(), call.route.clone());
        if let Some(counts) = self.unmatched.get_mut(&key) {
            if let Some(other) = (0..3).find(|&o| o != origin as usize && counts[o] > 0) {
                counts[other] -= 1;
                self.duplicates += 1;
                return false;
            }
            counts[origin as usize] += 1;
            return true;
        }
        while self.unmatched.len() >= self.max_keys {
            match self.order.pop_front() {
                Some(old) => {
                    if self.unmatched.remove(&old).is_some() {
                        self.evicted += 1;
                    }
                }
                None => break,
            }
        }
        let mut counts = [0; 3];
        counts[origin as usize] = 1;
        self.unmatched.insert(key.clone(), counts);
        self.order.push_back(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eastwest_model::Workload;

    fn call(request_id: &str, route: &str) -> Call {
        Call {
            source: Workload::new("a"),
            destination: Workload::new("b"),
            method: "GET".into(),
            route: route.into(),
            request_id: Some(request_id.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_same_call_from_spans_and_logs_counts_once() {
        let mut d = CallDeduper::default();
        assert!(d.admit(&call("r1", "/x"), CallOrigin::Spans));
        assert!(!d.admit(&call("r1", "/x"), CallOrigin::OutboundLog));
        assert!(d.admit(&call("r1", "/y"), CallOrigin::OutboundLog), "other route of the same request");
        assert_eq!(d.duplicates, 1);
    }

    #[test]
    fn outbound_and_inbound_lines_of_one_request_count_once_but_loops_count_each() {
        let mut d = CallDeduper::default();
        assert!(d.admit(&call("r2", "/x"), CallOrigin::OutboundLog));
        assert!(d.admit(&call("r2", "/x"), CallOrigin::OutboundLog), "second call in a loop");
        assert!(!d.admit(&call("r2", "/x"), CallOrigin::InboundLog));
        assert!(!d.admit(&call("r2", "/x"), CallOrigin::InboundLog));
        assert!(d.admit(&call("r2", "/x"), CallOrigin::InboundLog), "a third inbound line has no partner left");
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = CallDeduper::new(10);
        for i in 0..100 {
            assert!(d.admit(&call(&format!("r{i}"), "/x"), CallOrigin::Spans));
        }
        assert!(d.unmatched.len() <= 10);
        assert_eq!(d.evicted, 90);
    }
}
