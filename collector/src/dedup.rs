//! One request seen several times — as a span pair, as the caller's outbound access-log
//! line and as the callee's inbound line — counts once.
//!
//! Matching: a copy carries up to two ids, its `x-request-id` and its trace+span id.
//! `x-request-id` is propagated across a whole trace, so it is scoped by destination and
//! method (`request id | destination | method`); a trace+span id names one call on its
//! own. Copies sharing an id form a *group*, and a group holds at most one copy per
//! origin ([`CallOrigin`]): a second copy from an origin already in the group is another
//! call (a retry loop of identical requests counts every time). When several groups can
//! take a copy, the one with the same route wins, then the oldest.
//!
//! Which copy wins: with the default `merge_window` of zero every first copy is emitted at
//! once and later copies are dropped (no added latency; nothing can be merged into a call
//! already sent downstream). With a `merge_window`, [`CallDeduper::offer`] holds a first
//! copy that has an id for that much event time; copies arriving meanwhile are merged into
//! it — the span copy is the base when there is one (it carries the entry and the
//! normaliser's names), and missing fields are filled from the others: principals,
//! namespaces, mTLS flag, response flags, status, request/trace ids, entry, destination
//! address, version. [`CallDeduper::advance`] releases held calls whose window passed.
//!
//! Bounds: groups live `ttl` of event time after they were created (measured against the
//! newest event time seen or the watermark given to `advance`, whichever is later) and
//! at most `max_entries` exist; the oldest are evicted first. Expiry and eviction are
//! counted, and a held call is released (never dropped) when its group goes.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher as _};
use std::time::Duration;

use eastwest_model::Call;
use serde::{Deserialize, Serialize};

use crate::CollectorError;

pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_DEDUP_ENTRIES: usize = 200_000;
pub const DEFAULT_MERGE_WINDOW: Duration = Duration::ZERO;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOrigin {
    Spans = 0,
    OutboundLog = 1,
    InboundLog = 2,
}

impl CallOrigin {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Event time a group of copies is remembered after its first copy.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Groups remembered at once; beyond it the oldest is evicted.
    pub max_entries: usize,
    /// Event time [`CallDeduper::offer`] holds a first copy to merge later copies into;
    /// zero emits at once.
    #[serde(with = "humantime_serde")]
    pub merge_window: Duration,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_DEDUP_TTL,
            max_entries: DEFAULT_MAX_DEDUP_ENTRIES,
            merge_window: DEFAULT_MERGE_WINDOW,
        }
    }
}

impl DedupConfig {
    pub fn validate(&self) -> Result<(), CollectorError> {
        if self.max_entries == 0 {
            return Err(CollectorError::InvalidConfig(
                "dedup max_entries must be at least 1".into(),
            ));
        }
        if self.ttl.is_zero() || self.ttl < self.merge_window {
            return Err(CollectorError::InvalidConfig(
                "dedup ttl must be positive and at least the merge window".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DedupStats {
    /// Copies counted as a call of their own.
    pub admitted: u64,
    /// Copies recognised as another view of a call already counted.
    pub duplicates: u64,
    /// Duplicates whose fields were merged into a held call.
    pub merged: u64,
    /// Groups forgotten because their ttl passed.
    pub expired: u64,
    /// Groups forgotten early because `max_entries` was reached.
    pub evicted: u64,
    /// Groups remembered now.
    pub entries: u64,
    /// Calls held for merging now.
    pub held: u64,
}

/// Ids are 64-bit hashes under a per-process seed: no allocation per copy, and a
/// collision (about 1 in 10^9 at the default bound) cannot be aimed at.
type IdHasher = foldhash::quality::RandomState;
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Stale index entries tolerated beyond the live ones before a sweep (so that a small
/// deduper is not swept on every call).
const STALE_SLACK: usize = 64;

/// Three origins with at most two ids each.
const MAX_IDS_PER_GROUP: usize = 6;

#[derive(Debug)]
struct Group {
    ids: [u64; MAX_IDS_PER_GROUP],
    id_count: u8,
    origins: u8,
    route_hash: u64,
    created_ns: i64,
    /// The merged call not yet released, and the event time at which it is (boxed: a
    /// group is small and most hold nothing).
    held: Option<Box<(Call, i64)>>,
}

#[derive(Debug)]
pub struct CallDeduper {
    config: DedupConfig,
    /// Groups in creation order, which is also the order they are forgotten in (expiry
    /// and eviction walk it from the front): group id `first_group + i` is at `i`.
    groups: VecDeque<Group>,
    first_group: u64,
    /// Id → the groups holding it (almost always one). Entries of forgotten groups are
    /// left behind and skipped on lookup (a forgotten group's id is below `first_group`),
    /// then swept out in one pass once they outnumber the live ones: forgetting a group
    /// touches only the front of `groups`, not two random places in a large table.
    by_id: FastMap<u64, GroupList>,
    /// Ids held by the groups remembered now.
    live_ids: usize,
    id_hasher: IdHasher,
    /// Held group ids in hold order (release walks it from the front).
    held_order: VecDeque<u64>,
    held_now: u64,
    /// Newest event time of any copy seen.
    newest_ns: i64,
    /// The caller's watermark (`advance`): held calls up to it are released.
    watermark_ns: i64,
    stats: DedupStats,
}

impl Default for CallDeduper {
    fn default() -> Self {
        Self::new(DedupConfig::default())
    }
}

#[derive(Debug)]
enum GroupList {
    One(u64),
    Many(Vec<u64>),
}

impl GroupList {
    fn as_slice(&self) -> &[u64] {
        match self {
            GroupList::One(g) => std::slice::from_ref(g),
            GroupList::Many(v) => v,
        }
    }

    /// Adds `gid`, dropping groups forgotten before `first_live`.
    fn push(&mut self, gid: u64, first_live: u64) {
        match self {
            GroupList::One(g) if *g < first_live => *g = gid,
            GroupList::One(g) => *self = GroupList::Many(vec![*g, gid]),
            GroupList::Many(v) => {
                v.retain(|g| *g >= first_live);
                v.push(gid);
            }
        }
    }

    /// Drops groups forgotten before `first_live`; true when some group is left.
    fn retain_live(&mut self, first_live: u64) -> bool {
        match self {
            GroupList::One(g) => *g >= first_live,
            GroupList::Many(v) => {
                v.retain(|g| *g >= first_live);
                !v.is_empty()
            }
        }
    }
}

/// The copy's ids: its `x-request-id` scoped by destination and method, and its
/// trace+span id.
fn call_ids(hasher: &IdHasher, call: &Call) -> ([u64; 2], usize) {
    let mut ids = [0; 2];
    let mut n = 0;
    if let Some(rid) = call.request_id.as_deref().filter(|r| !r.is_empty()) {
        let mut h = hasher.build_hasher();
        (b'r', rid, &call.destination.service).hash(&mut h);
        (&call.destination.namespace, &call.method).hash(&mut h);
        ids[n] = h.finish();
        n += 1;
    }
    if !call.trace_id.is_empty() && !call.span_id.is_empty() {
        ids[n] = hasher.hash_one((b't', &call.trace_id, &call.span_id));
        n += 1;
    }
    (ids, n)
}

/// Fills what `base` does not know from `other`.
fn merge_into(base: &mut Call, other: Call) {
    fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
        if slot.is_none() {
            *slot = value;
        }
    }
    fill(&mut base.source.principal, other.source.principal);
    fill(&mut base.source.namespace, other.source.namespace);
    fill(&mut base.destination.principal, other.destination.principal);
    fill(&mut base.destination.namespace, other.destination.namespace);
    fill(&mut base.mtls, other.mtls);
    fill(&mut base.response_flags, other.response_flags);
    fill(&mut base.status, other.status);
    fill(&mut base.request_id, other.request_id);
    fill(&mut base.entry, other.entry);
    fill(&mut base.destination_address, other.destination_address);
    fill(&mut base.source_version, other.source_version);
    fill(&mut base.request_bytes, other.request_bytes);
    fill(&mut base.response_bytes, other.response_bytes);
    if base.trace_id.is_empty() {
        base.trace_id = other.trace_id;
        base.span_id = other.span_id;
    }
    base.error |= other.error;
}

impl CallDeduper {
    pub fn new(config: DedupConfig) -> Self {
        Self {
            config,
            groups: VecDeque::new(),
            first_group: 0,
            by_id: FastMap::default(),
            live_ids: 0,
            id_hasher: IdHasher::default(),
            held_order: VecDeque::new(),
            held_now: 0,
            newest_ns: i64::MIN,
            watermark_ns: i64::MIN,
            stats: DedupStats::default(),
        }
    }

    pub fn stats(&self) -> DedupStats {
        DedupStats {
            entries: self.groups.len() as u64,
            held: self.held_now,
            ..self.stats
        }
    }

    /// Immediate mode: true when the call counts (emit it), false for another copy of a
    /// call already counted. Never holds or merges, whatever the merge window; use one
    /// mode per deduper.
    pub fn admit(&mut self, call: &Call, origin: CallOrigin) -> bool {
        let (new, _) = self.record(call, origin);
        let released = self.enforce_bounds();
        debug_assert!(
            released.is_empty(),
            "admit() and offer() mixed on one deduper"
        );
        new
    }

    /// Merge mode: the calls to emit now. A first copy with an id is held for
    /// `merge_window` of event time (zero: emitted at once); a later copy is merged into
    /// the held one, or dropped when it was already released.
    pub fn offer(&mut self, call: Call, origin: CallOrigin) -> Vec<Call> {
        let hold = !self.config.merge_window.is_zero();
        let (new, group) = self.record(&call, origin);
        let mut out = self.enforce_bounds();
        let window_ns = self.config.merge_window.as_nanos().min(i64::MAX as u128) as i64;
        match (
            new,
            group.and_then(|gid| self.group_mut(gid).map(|g| (gid, g))),
        ) {
            (true, Some((gid, g))) if hold => {
                let release_at = call.event_time_ns.saturating_add(window_ns);
                g.held = Some(Box::new((call, release_at)));
                self.held_order.push_back(gid);
                self.held_now += 1;
            }
            (true, _) => out.push(call),
            (false, Some((_, g))) => {
                if let Some((held, _)) = g.held.as_deref_mut() {
                    if origin == CallOrigin::Spans {
                        let log_copy = std::mem::replace(held, call);
                        merge_into(held, log_copy);
                    } else {
                        merge_into(held, call);
                    }
                    self.stats.merged += 1;
                }
            }
            (false, None) => {}
        }
        out
    }

    /// Moves event time forward: releases held calls whose window passed and forgets
    /// groups older than the ttl.
    pub fn advance(&mut self, watermark_ns: i64) -> Vec<Call> {
        self.watermark_ns = self.watermark_ns.max(watermark_ns);
        let mut out = Vec::new();
        while let Some(&gid) = self.held_order.front() {
            let due = match self.group(gid).and_then(|g| g.held.as_deref()) {
                Some((_, release_at)) => *release_at <= self.watermark_ns,
                None => true,
            };
            if !due {
                break;
            }
            self.held_order.pop_front();
            if let Some(held) = self.group_mut(gid).and_then(|g| g.held.take()) {
                self.held_now -= 1;
                out.push(held.0);
            }
        }
        out.extend(self.enforce_bounds());
        out
    }

    /// Releases every held call (shutdown, end of a replay); groups stay for dedup.
    pub fn flush(&mut self) -> Vec<Call> {
        let held = std::mem::take(&mut self.held_order);
        self.held_now = 0;
        held.into_iter()
            .filter_map(|gid| {
                self.group_mut(gid)
                    .and_then(|g| g.held.take())
                    .map(|held| held.0)
            })
            .collect()
    }

    /// Joins `call` to a group or starts one; (counts as new, its group).
    fn record(&mut self, call: &Call, origin: CallOrigin) -> (bool, Option<u64>) {
        self.newest_ns = self.newest_ns.max(call.event_time_ns);
        let (ids, id_count) = call_ids(&self.id_hasher, call);
        let ids = &ids[..id_count];
        if ids.is_empty() {
            self.stats.admitted += 1;
            return (true, None);
        }
        let route_hash = self.id_hasher.hash_one(&call.route);
        let candidate = ids
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .flat_map(GroupList::as_slice)
            .filter_map(|gid| self.group(*gid).map(|g| (*gid, g)))
            .filter(|(_, g)| g.origins & origin.bit() == 0)
            .min_by_key(|(gid, g)| (g.route_hash != route_hash, *gid))
            .map(|(gid, _)| gid);
        let gid = match candidate {
            Some(gid) => {
                self.stats.duplicates += 1;
                gid
            }
            None => {
                self.stats.admitted += 1;
                let gid = self.first_group + self.groups.len() as u64;
                let group = Group {
                    ids: [0; MAX_IDS_PER_GROUP],
                    id_count: 0,
                    origins: 0,
                    route_hash,
                    created_ns: call.event_time_ns,
                    held: None,
                };
                self.groups.push_back(group);
                gid
            }
        };
        // Field access, not `group_mut`: `by_id` is updated while the group is borrowed.
        let first_live = self.first_group;
        let index = (gid - self.first_group) as usize;
        let group = &mut self.groups[index];
        group.origins |= origin.bit();
        for &id in ids {
            let known = &group.ids[..group.id_count as usize];
            // One copy per origin, two ids per copy: the array cannot overflow.
            if !known.contains(&id) && (group.id_count as usize) < MAX_IDS_PER_GROUP {
                group.ids[group.id_count as usize] = id;
                group.id_count += 1;
                self.live_ids += 1;
                match self.by_id.entry(id) {
                    Entry::Occupied(mut e) => e.get_mut().push(gid, first_live),
                    Entry::Vacant(e) => {
                        e.insert(GroupList::One(gid));
                    }
                }
            }
        }
        (candidate.is_none(), Some(gid))
    }

    fn group(&self, gid: u64) -> Option<&Group> {
        let index = gid.checked_sub(self.first_group)?;
        self.groups.get(usize::try_from(index).ok()?)
    }

    fn group_mut(&mut self, gid: u64) -> Option<&mut Group> {
        let index = gid.checked_sub(self.first_group)?;
        self.groups.get_mut(usize::try_from(index).ok()?)
    }

    fn ttl_ns(&self) -> i64 {
        self.config.ttl.as_nanos().min(i64::MAX as u128) as i64
    }

    /// Forgets expired groups and, beyond `max_entries`, the oldest; returns held calls
    /// of forgotten groups.
    fn enforce_bounds(&mut self) -> Vec<Call> {
        let mut released = Vec::new();
        let ttl = self.ttl_ns();
        let horizon = self.newest_ns.max(self.watermark_ns);
        while let Some(oldest) = self.groups.front() {
            let expired = oldest.created_ns.saturating_add(ttl) < horizon;
            let over = self.groups.len() > self.config.max_entries.max(1);
            if !expired && !over {
                break;
            }
            self.first_group += 1;
            if let Some(group) = self.groups.pop_front() {
                if expired {
                    self.stats.expired += 1;
                } else {
                    self.stats.evicted += 1;
                }
                self.live_ids -= usize::from(group.id_count);
                // Its stale entries in `by_id` and `held_order` are skipped.
                if let Some(held) = group.held {
                    self.held_now -= 1;
                    released.push(held.0);
                }
            }
        }
        if self.by_id.len() > 2 * self.live_ids + STALE_SLACK {
            let first_live = self.first_group;
            self.by_id.retain(|_, list| list.retain_live(first_live));
        }
        released
    }
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
