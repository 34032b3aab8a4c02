//! The endpoint table: one row per learned endpoint (edge + method + route) holding its
//! counts and every context (entry) it was called under.
//!
//! Laid out for the hot path, which asks per call whether the endpoint is known and
//! whether it is known under the call's entry. A row is found from the call's route text
//! directly (short routes are kept in the row itself), and the row holds its first context
//! inline, so a call reads one row, not the route's interned name, then the endpoint, then
//! a separate context table. Rows live in one dense vector behind two tables of 4-byte
//! positions: by ids (what the rest of the baseline holds) and by route text (what a call
//! holds).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::index::{ContextStats, EdgeKey, EndpointKey, EndpointStats, EntryKey, Map, NameId};
use crate::names::Names;

/// Longest route kept inside its row; longer routes are compared through the interner.
const INLINE_ROUTE_BYTES: usize = 87;
/// `route_len` of a row whose route is too long to keep inline.
const ROUTE_NOT_INLINE: u8 = u8::MAX;
const _: () = assert!(INLINE_ROUTE_BYTES < ROUTE_NOT_INLINE as usize);

/// One endpoint, aligned to cache lines so that reading it touches only its own lines.
#[derive(Debug, Clone)]
#[repr(align(64))]
pub(crate) struct EndpointRow {
    pub key: EndpointKey,
    pub stats: EndpointStats,
    /// Hash of (edge, method, route text): the row's place in `by_route`.
    route_hash: u64,
    /// Most endpoints are reached from one entry, so the first context lives in the row.
    first_context: Option<(EntryKey, ContextStats)>,
    more_contexts: Option<Box<Map<EntryKey, ContextStats>>>,
    route_len: u8,
    route: [u8; INLINE_ROUTE_BYTES],
}

const _: () = assert!(std::mem::size_of::<EndpointRow>() == 192);

impl EndpointRow {
    pub fn context(&self, entry: EntryKey) -> Option<&ContextStats> {
        match &self.first_context {
            Some((first, stats)) if *first == entry => Some(stats),
            _ => self.more_contexts.as_ref()?.get(&entry),
        }
    }

    pub fn contexts(&self) -> impl Iterator<Item = (EntryKey, &ContextStats)> {
        let first = self.first_context.iter().map(|(e, s)| (*e, s));
        let more = self.more_contexts.iter().flat_map(|m| m.iter());
        first.chain(more.map(|(e, s)| (*e, s)))
    }

    fn context_count(&self) -> usize {
        usize::from(self.first_context.is_some())
            + self.more_contexts.as_ref().map_or(0, |m| m.len())
    }

    fn route_is(&self, names: &Names, route: &str) -> bool {
        if self.route_len == ROUTE_NOT_INLINE {
            names.name(self.key.route) == route
        } else {
            &self.route[..usize::from(self.route_len)] == route.as_bytes()
        }
    }

    /// Keeps the contexts `keep` accepts; the first kept one moves inline.
    fn retain_contexts(&mut self, mut keep: impl FnMut(&ContextStats) -> bool) {
        let mut kept: Vec<(EntryKey, ContextStats)> = self
            .first_context
            .take()
            .into_iter()
            .chain(
                self.more_contexts
                    .take()
                    .into_iter()
                    .flat_map(|m| m.into_iter()),
            )
            .filter(|(_, s)| keep(s))
            .collect();
        if kept.is_empty() {
            return;
        }
        self.first_context = Some(kept.swap_remove(0));
        if !kept.is_empty() {
            self.more_contexts = Some(Box::new(kept.into_iter().collect()));
        }
    }
}

/// Every learned endpoint; see the module docs for the layout.
#[derive(Debug, Clone, Default)]
pub(crate) struct EndpointTable {
    /// Randomly seeded per process: routes are attacker-controlled.
    hasher: foldhash::fast::RandomState,
    rows: Vec<EndpointRow>,
    by_key: HashTable<u32>,
    by_route: HashTable<u32>,
    contexts: usize,
}

fn route_hash(
    hasher: &foldhash::fast::RandomState,
    edge: EdgeKey,
    method: NameId,
    route: &str,
) -> u64 {
    hasher.hash_one((edge, method, route.as_bytes()))
}

impl EndpointTable {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Endpoint contexts across all rows.
    pub fn context_count(&self) -> usize {
        self.contexts
    }

    pub fn iter(&self) -> impl Iterator<Item = &EndpointRow> {
        self.rows.iter()
    }

    pub fn get(&self, key: EndpointKey) -> Option<&EndpointRow> {
        self.position(key).map(|i| &self.rows[i])
    }

    fn position(&self, key: EndpointKey) -> Option<usize> {
        let rows = &self.rows;
        self.by_key
            .find(self.hasher.hash_one(key), |&i| rows[i as usize].key == key)
            .map(|&i| i as usize)
    }

    /// The position of the endpoint `method route` on `edge`, found from the route's text.
    pub fn find(&self, names: &Names, edge: EdgeKey, method: NameId, route: &str) -> Option<u32> {
        let rows = &self.rows;
        let hash = route_hash(&self.hasher, edge, method, route);
        self.by_route
            .find(hash, |&i| {
                let row = &rows[i as usize];
                row.key.edge == edge && row.key.method == method && row.route_is(names, route)
            })
            .copied()
    }

    pub fn row_key(&self, position: u32) -> Option<EndpointKey> {
        self.rows.get(position as usize).map(|row| row.key)
    }

    /// The row at a position [`EndpointTable::find`] returned, if it still holds `key`
    /// (positions move when rows age out).
    pub fn at(&self, position: u32, key: EndpointKey) -> Option<&EndpointRow> {
        let row = self.rows.get(position as usize)?;
        if row.key == key {
            Some(row)
        } else {
            self.get(key)
        }
    }

    /// The counts of `key`, starting from `new()` when the endpoint is not yet learned.
    /// `names` must be the interner that issued the key's ids.
    pub fn upsert(
        &mut self,
        names: &Names,
        key: EndpointKey,
        new: impl FnOnce() -> EndpointStats,
    ) -> &mut EndpointStats {
        if let Some(i) = self.position(key) {
            return &mut self.rows[i].stats;
        }
        let route = names.name(key.route);
        let mut row = EndpointRow {
            key,
            stats: new(),
            route_hash: route_hash(&self.hasher, key.edge, key.method, route),
            first_context: None,
            more_contexts: None,
            route_len: ROUTE_NOT_INLINE,
            route: [0; INLINE_ROUTE_BYTES],
        };
        if route.len() <= INLINE_ROUTE_BYTES {
            row.route[..route.len()].copy_from_slice(route.as_bytes());
            row.route_len = route.len() as u8;
        }
        let position = u32::try_from(self.rows.len()).expect("endpoints are capped below 2^32");
        self.rows.push(row);
        self.index_row(position);
        &mut self.rows[position as usize].stats
    }

    /// The context `entry` of the learned endpoint `key`, starting from `new()` when the
    /// endpoint was never called under it; `None` when the endpoint is not learned.
    pub fn upsert_context(
        &mut self,
        key: EndpointKey,
        entry: EntryKey,
        new: impl FnOnce() -> ContextStats,
    ) -> Option<&mut ContextStats> {
        let i = self.position(key)?;
        let row = &mut self.rows[i];
        let contexts = &mut self.contexts;
        match row.first_context.as_ref().map(|(first, _)| *first == entry) {
            None => {
                *contexts += 1;
                Some(&mut row.first_context.insert((entry, new())).1)
            }
            Some(true) => row.first_context.as_mut().map(|(_, stats)| stats),
            Some(false) => {
                let more = row.more_contexts.get_or_insert_with(Default::default);
                Some(more.entry(entry).or_insert_with(|| {
                    *contexts += 1;
                    new()
                }))
            }
        }
    }

    /// Keeps the endpoints `keep_row` accepts, and of those the contexts `keep_context`
    /// accepts.
    pub fn retain(
        &mut self,
        keep_row: impl FnMut(&EndpointRow) -> bool,
        mut keep_context: impl FnMut(&ContextStats) -> bool,
    ) {
        self.rows.retain(keep_row);
        for row in &mut self.rows {
            row.retain_contexts(&mut keep_context);
        }
        self.contexts = self.rows.iter().map(EndpointRow::context_count).sum();
        self.by_key.clear();
        self.by_route.clear();
        for position in 0..self.rows.len() {
            self.index_row(position as u32);
        }
    }

    fn index_row(&mut self, position: u32) {
        let Self {
            hasher,
            rows,
            by_key,
            by_route,
            ..
        } = self;
        let row = &rows[position as usize];
        by_key.insert_unique(hasher.hash_one(row.key), position, |&i| {
            hasher.hash_one(rows[i as usize].key)
        });
        by_route.insert_unique(row.route_hash, position, |&i| rows[i as usize].route_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(names: &mut Names, route: &str) -> EndpointKey {
        let edge = names.intern_edge("a.prod", "b.prod");
        names.intern_endpoint(edge, "GET", route)
    }

    fn seen(t: i64) -> ContextStats {
        ContextStats {
            first_seen_ns: t,
            last_seen_ns: t,
            calls: 1.0,
        }
    }

    proptest::proptest! {
        /// Every learned endpoint is found by its ids and by its route text, at and past
        /// the inline limit, and nothing else is; contexts survive retention by value.
        #[test]
        fn rows_are_found_by_ids_and_by_route_text(
            routes in proptest::collection::vec(".{0,120}", 1..60),
            contexts in proptest::collection::vec(0u8..6, 1..60),
        ) {
            let mut names = Names::default();
            let mut table = EndpointTable::default();
            let entries: Vec<EntryKey> =
                (0..6).map(|i| names.intern_entry("gw.prod", &format!("/page{i}"))).collect();
            let keys: Vec<EndpointKey> = routes.iter().map(|r| key(&mut names, r)).collect();
            for (i, k) in keys.iter().enumerate() {
                table.upsert(&names, *k, Default::default).calls += 1.0;
                let entry = entries[usize::from(contexts[i % contexts.len()])];
                table.upsert_context(*k, entry, || seen(i as i64)).expect("row added");
            }
            let distinct: std::collections::HashSet<&String> = routes.iter().collect();
            proptest::prop_assert_eq!(table.len(), distinct.len());
            for (route, k) in routes.iter().zip(&keys) {
                proptest::prop_assert_eq!(table.get(*k).map(|r| r.key), Some(*k));
                let found = table.find(&names, k.edge, k.method, route);
                proptest::prop_assert_eq!(found.and_then(|at| table.at(at, *k)).map(|r| r.key), Some(*k));
                let other = format!("{route}x");
                if !distinct.contains(&other) {
                    proptest::prop_assert!(table.find(&names, k.edge, k.method, &other).is_none());
                }
            }
            let all: usize = table.iter().map(|r| r.contexts().count()).sum();
            proptest::prop_assert_eq!(table.context_count(), all);

            let before: Vec<(EndpointKey, Vec<(EntryKey, i64)>)> = table
                .iter()
                .map(|r| (r.key, r.contexts().map(|(e, s)| (e, s.first_seen_ns)).collect()))
                .collect();
            table.retain(|r| r.stats.calls > 0.0, |s| s.first_seen_ns % 2 == 0);
            for (k, contexts) in before {
                for (entry, first_seen) in contexts {
                    let kept = table.get(k).and_then(|r| r.context(entry)).is_some();
                    proptest::prop_assert_eq!(kept, first_seen % 2 == 0);
                }
            }
            let all: usize = table.iter().map(|r| r.contexts().count()).sum();
            proptest::prop_assert_eq!(table.context_count(), all);
        }
    }

    #[test]
    fn a_context_needs_its_endpoint() {
        let mut names = Names::default();
        let mut table = EndpointTable::default();
        let k = key(&mut names, "/x");
        let entry = names.intern_entry("gw.prod", "/");
        assert!(table.upsert_context(k, entry, || seen(1)).is_none());
        assert_eq!(table.context_count(), 0);
    }

    #[test]
    fn same_route_on_another_method_is_another_endpoint() {
        let mut names = Names::default();
        let mut table = EndpointTable::default();
        let get = key(&mut names, "/admin");
        table.upsert(&names, get, Default::default);
        let post = names.intern_endpoint(get.edge, "POST", "/admin");
        assert!(
            table
                .find(&names, get.edge, post.method, "/admin")
                .is_none()
        );
        assert!(table.get(post).is_none());
        assert!(table.find(&names, get.edge, get.method, "/admin").is_some());
    }
}
