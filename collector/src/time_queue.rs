//! [`TimeQueue`]: a min-priority queue for items keyed by event time, for the pipeline's
//! timers and reorder buffer.
//!
//! Those queues take every call or span once and give it back a few seconds of event time
//! later; with a binary heap, each push and pop walks a dozen levels of a heap that no
//! longer sits in cache. Here items wait unsorted in buckets of event time, and a bucket
//! is sorted once, when it becomes the earliest: a push is an append, a pop takes the end
//! of a sorted vector. Items pushed into a bucket already sorted (or earlier) go to a
//! small heap beside it, so no input order makes a push cost more than a heap's. Pushes
//! mostly land in the newest bucket, which is kept out of the ordered map of the others
//! (a push there is one comparison), and the vectors of used-up buckets are reused.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// A bucket spans 2^27 ns (about 134 ms) of event time.
const BUCKET_SHIFT: u32 = 27;

fn bucket(time_ns: i64) -> i64 {
    time_ns >> BUCKET_SHIFT
}

/// Pops in ascending `(time, item)` order, whatever order items were pushed in.
#[derive(Debug)]
pub struct TimeQueue<T: Ord> {
    /// The earliest bucket's items, largest first (the smallest pops off the end).
    front: Vec<(i64, T)>,
    /// The bucket `front` was taken from: every item in `front` and `stragglers` is in it
    /// or before it, every item in `later` after it.
    front_bucket: i64,
    /// Items pushed into `front_bucket` or earlier after it was sorted.
    stragglers: BinaryHeap<Reverse<(i64, T)>>,
    /// Later buckets but the newest, their items unsorted.
    later: BTreeMap<i64, Vec<(i64, T)>>,
    /// The newest bucket (after every bucket in `later`), its items unsorted.
    newest: Option<(i64, Vec<(i64, T)>)>,
    /// Emptied bucket vectors, kept for new buckets.
    spare: Vec<Vec<(i64, T)>>,
    len: usize,
}

/// Emptied bucket vectors kept for reuse.
const SPARE_BUCKETS: usize = 4;

impl<T: Ord> Default for TimeQueue<T> {
    fn default() -> Self {
        Self {
            front: Vec::new(),
            front_bucket: i64::MIN,
            stragglers: BinaryHeap::new(),
            later: BTreeMap::new(),
            newest: None,
            spare: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Ord> TimeQueue<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn push(&mut self, time_ns: i64, item: T) {
        self.len += 1;
        let b = bucket(time_ns);
        if b <= self.front_bucket {
            self.stragglers.push(Reverse((time_ns, item)));
            return;
        }
        match &mut self.newest {
            Some((newest, items)) if *newest == b => items.push((time_ns, item)),
            Some((newest, _)) if *newest > b => {
                let spare = &mut self.spare;
                let items = self
                    .later
                    .entry(b)
                    .or_insert_with(|| spare.pop().unwrap_or_default());
                items.push((time_ns, item));
            }
            _ => {
                let mut items = self.spare.pop().unwrap_or_default();
                items.push((time_ns, item));
                if let Some((older, older_items)) = self.newest.replace((b, items)) {
                    self.later.insert(older, older_items);
                }
            }
        }
    }

    /// The smallest item (sorting the next bucket when the current one is used up).
    pub fn peek(&mut self) -> Option<(i64, &T)> {
        self.refill();
        let front = self.front.last();
        let straggler = self.stragglers.peek().map(|Reverse(s)| s);
        let smallest = match (front, straggler) {
            (Some(f), Some(s)) => Some(if s < f { s } else { f }),
            (f, s) => f.or(s),
        };
        smallest.map(|(t, item)| (*t, item))
    }

    pub fn pop(&mut self) -> Option<(i64, T)> {
        self.refill();
        let straggler_first = match (self.front.last(), self.stragglers.peek()) {
            (Some(f), Some(Reverse(s))) => s < f,
            (None, Some(_)) => true,
            _ => false,
        };
        let popped = if straggler_first {
            self.stragglers.pop().map(|Reverse(s)| s)
        } else {
            self.front.pop()
        };
        if popped.is_some() {
            self.len -= 1;
        }
        popped
    }

    /// The latest time held, if any (a scan: for the end of input, not the hot path).
    pub fn max_time(&self) -> Option<i64> {
        let later = self
            .newest
            .as_ref()
            .and_then(|(_, items)| items.iter().map(|(t, _)| *t).max());
        later.or_else(|| {
            let front = self.front.first().map(|(t, _)| *t);
            let stragglers = self.stragglers.iter().map(|Reverse((t, _))| *t).max();
            front.max(stragglers)
        })
    }

    fn refill(&mut self) {
        if !self.front.is_empty() || !self.stragglers.is_empty() {
            return;
        }
        if let Some((b, mut items)) = self.later.pop_first().or_else(|| self.newest.take()) {
            items.sort_unstable_by(|a, b| b.cmp(a));
            let used = std::mem::replace(&mut self.front, items);
            if self.spare.len() < SPARE_BUCKETS {
                self.spare.push(used);
            }
            self.front_bucket = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(i64, u8),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Times spread over a few buckets, with repeats, and now and then far apart.
        let time = prop_oneof![
            4 => 0i64..(1 << 29),
            2 => 0i64..(1 << 33),
            1 => any::<i64>(),
        ];
        prop_oneof![
            3 => (time, any::<u8>()).prop_map(|(t, v)| Op::Push(t, v)),
            2 => Just(Op::Pop),
        ]
    }

    proptest! {
        /// Pops the same sequence as a binary heap for any interleaving of pushes and pops.
        #[test]
        fn pops_as_a_heap_does(ops in proptest::collection::vec(op(), 0..400)) {
            let mut queue = TimeQueue::default();
            let mut heap = BinaryHeap::new();
            for op in ops {
                match op {
                    Op::Push(t, v) => {
                        queue.push(t, v);
                        heap.push(Reverse((t, v)));
                    }
                    Op::Pop => {
                        let expected = heap.peek().map(|Reverse((t, v))| (*t, *v));
                        prop_assert_eq!(queue.peek().map(|(t, v)| (t, *v)), expected);
                        prop_assert_eq!(queue.pop(), heap.pop().map(|Reverse(x)| x));
                    }
                }
                prop_assert_eq!(queue.len(), heap.len());
                let max = heap.iter().map(|Reverse((t, _))| *t).max();
                prop_assert_eq!(queue.max_time(), max);
            }
            while let Some(Reverse(x)) = heap.pop() {
                prop_assert_eq!(queue.pop(), Some(x));
            }
            prop_assert!(queue.pop().is_none());
            prop_assert!(queue.is_empty());
        }
    }

    #[test]
    fn an_early_push_after_sorting_still_pops_first() {
        let mut queue = TimeQueue::default();
        queue.push(10, 'b');
        queue.push(20, 'c');
        assert_eq!(queue.pop(), Some((10, 'b')));
        queue.push(5, 'a');
        queue.push(1 << 40, 'd');
        assert_eq!(queue.pop(), Some((5, 'a')));
        assert_eq!(queue.pop(), Some((20, 'c')));
        assert_eq!(queue.pop(), Some((1 << 40, 'd')));
        assert_eq!(queue.pop(), None);
    }
}
