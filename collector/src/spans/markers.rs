//! Layer markers of the pairing store: "this span id has a caller child" and "this span
//! id is a callee", each live until its due time. A marker is set for nearly every span
//! and read only when a side expires unpaired, so the set is large and cold: removing
//! each marker when it expires (one probe into that table per span) cost more than
//! setting it. Here a marker keeps its due time, expired markers are dropped together by
//! one sequential pass once they outnumber the live ones, and whether a marker is live
//! is decided from its due time exactly as if it had been removed on time.

use std::collections::HashMap;

use super::Hasher;

/// (trace id, span id).
pub(super) type Key = (u128, u64);

/// When a timer is due: event time, then scheduling order (sequence numbers are unique
/// across the store's sides and markers).
pub(super) type Due = (i64, u64);

/// Markers kept before the first purge, and at least as many between purges.
const MIN_PURGE_LEN: usize = 4096;

#[derive(Debug)]
pub(super) struct Markers {
    due: HashMap<Key, Due, Hasher>,
    /// Markers due at or before this time had expired when the last advance ended…
    expired_through: i64,
    /// …unless set after it (a marker set late, already due, expires at the next).
    last_seq_advanced: u64,
    /// The map's length that triggers the next purge.
    purge_at: usize,
}

impl Default for Markers {
    fn default() -> Self {
        Self {
            due: HashMap::default(),
            expired_through: i64::MIN,
            last_seq_advanced: 0,
            purge_at: MIN_PURGE_LEN,
        }
    }
}

/// Whether a marker due at `due` had not expired when an advance to `through` ended,
/// `seq` the newest sequence number then.
fn unexpired(due: Due, (through, seq): (i64, u64)) -> bool {
    due.0 > through || due.1 > seq
}

impl Markers {
    fn last_advance(&self) -> (i64, u64) {
        (self.expired_through, self.last_seq_advanced)
    }

    /// Sets `key`'s marker to expire at `at_ns`, unless it holds one that has not expired
    /// (that one keeps its due time). A marker set takes the next number of `seq`, the
    /// sequence the store's side timers are ordered by.
    pub fn set(&mut self, key: Key, at_ns: i64, seq: &mut u64) {
        let last = self.last_advance();
        let due = (at_ns, *seq + 1);
        match self.due.get_mut(&key) {
            Some(held) if unexpired(*held, last) => return,
            Some(held) => *held = due,
            None => {
                self.due.insert(key, due);
            }
        }
        *seq += 1;
    }

    /// Whether `key`'s marker is live when a side due at `at` expires, during an advance:
    /// markers expire in time order with the sides, so it is live if it had not expired
    /// before this advance and is due after the side.
    pub fn live_at(&self, key: &Key, at: Due) -> bool {
        self.due
            .get(key)
            .is_some_and(|due| unexpired(*due, self.last_advance()) && *due > at)
    }

    /// An advance to `watermark_ns` ended: every marker due by then has expired (the
    /// watermark never moves back). `last_seq` is the newest sequence number handed out.
    pub fn advanced(&mut self, watermark_ns: i64, last_seq: u64) {
        self.expired_through = self.expired_through.max(watermark_ns);
        self.last_seq_advanced = last_seq;
        if self.due.len() >= self.purge_at {
            let last = self.last_advance();
            self.due.retain(|_, due| unexpired(*due, last));
            self.purge_at = (self.due.len() * 2).max(MIN_PURGE_LEN);
        }
    }

    /// Markers held, expired ones not yet purged included.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets a marker; true when it was set (it took a sequence number).
    fn set(m: &mut Markers, key: Key, at_ns: i64, seq: &mut u64) -> bool {
        let before = *seq;
        m.set(key, at_ns, seq);
        *seq > before
    }

    #[test]
    fn a_marker_is_live_until_an_advance_passes_its_due_time() {
        let (mut m, mut seq) = (Markers::default(), 0);
        assert!(set(&mut m, (1, 1), 100, &mut seq));
        assert!(
            !set(&mut m, (1, 1), 300, &mut seq),
            "a live marker keeps its due time"
        );
        assert!(m.live_at(&(1, 1), (99, 5)));
        assert!(!m.live_at(&(1, 1), (100, 5)), "due before the side");
        m.advanced(150, seq);
        assert!(!m.live_at(&(1, 1), (50, 3)), "expired at the last advance");
        assert!(set(&mut m, (1, 1), 400, &mut seq), "set again once expired");
        assert!(m.live_at(&(1, 1), (399, 9)));
        assert!(!m.live_at(&(2, 2), (0, 0)), "never set");
    }

    #[test]
    fn a_marker_set_after_an_advance_lives_until_the_next_even_when_already_due() {
        let (mut m, mut seq) = (Markers::default(), 0);
        m.advanced(1_000, seq);
        assert!(set(&mut m, (1, 1), 500, &mut seq));
        assert!(
            !set(&mut m, (1, 1), 2_000, &mut seq),
            "not expired before the next advance"
        );
        assert!(m.live_at(&(1, 1), (400, 7)), "due after the side");
        m.advanced(1_000, seq);
        assert!(!m.live_at(&(1, 1), (400, 7)));
    }

    #[test]
    fn expired_markers_are_purged_once_they_outnumber_the_live_ones() {
        let (mut m, mut seq) = (Markers::default(), 0);
        let n = 3 * MIN_PURGE_LEN as u64;
        for i in 0..n {
            m.set((u128::from(i), i), i as i64, &mut seq);
        }
        assert_eq!(seq, n, "every marker took a number");
        m.advanced((n / 2) as i64, seq);
        assert!(
            m.held() <= (n / 2) as usize,
            "expired half dropped: {}",
            m.held()
        );
        for i in 0..n {
            let live = m.live_at(&(u128::from(i), i), (-1, 0));
            assert_eq!(live, i as i64 > (n / 2) as i64, "marker {i}");
        }
    }
}
