//! The interner behind every key of the baseline: each distinct name once, addressed by a
//! small integer id.
//!
//! Laid out for the hot path, which resolves a call's names once per call: the hash table
//! holds only 4-byte ids (small enough to stay in cache), and each name lives in one
//! cache-line slot with its bytes inline, so resolving a name the cache has not seen costs
//! one memory access, not two (a table bucket, then the heap string it points to).

use std::hash::BuildHasher;
use std::sync::Arc;

use eastwest_model::Workload;
use hashbrown::HashTable;

/// An interned name (workload key, method, route, entry service or route, principal),
/// valid only within the [`Names`] (and so the [`crate::LookupIndex`]) that issued it:
/// keys are small integers, so a learned row costs a few bytes of key however long its
/// names are, and a lookup hashes each of the call's names once instead of once per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(u32);

/// Longest name stored inside its slot; longer names are shared heap strings.
const INLINE_NAME_BYTES: usize = 62;

#[derive(Debug, Clone)]
enum Stored {
    Inline {
        len: u8,
        bytes: [u8; INLINE_NAME_BYTES],
    },
    Shared(Arc<str>),
}

/// One name, aligned to a cache line so that reading it touches exactly one line.
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Slot(Stored);

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    fn new(name: &str) -> Self {
        Slot(if name.len() <= INLINE_NAME_BYTES {
            let mut bytes = [0u8; INLINE_NAME_BYTES];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            Stored::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            Stored::Shared(Arc::from(name))
        })
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Stored::Inline { len, bytes } => &bytes[..*len as usize],
            Stored::Shared(name) => name.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match &self.0 {
            // Copied from a `&str` whole, so always valid UTF-8.
            Stored::Inline { .. } => std::str::from_utf8(self.bytes()).expect("copied from a str"),
            Stored::Shared(name) => name,
        }
    }
}

/// The interner: every distinct name once. Cloning it (once per published snapshot)
/// copies the slots and shares the long names.
#[derive(Clone, Default)]
pub struct Names {
    /// Hashes names; randomly seeded per process, since names are attacker-controlled.
    hasher: foldhash::fast::RandomState,
    ids: HashTable<NameId>,
    /// Every name holding a dot, again, hashed by its two parts around the last dot. A
    /// workload key is `service.namespace` and namespaces hold no dots, so the hot path
    /// finds a workload's id from its two strings without joining them first.
    dotted: HashTable<NameId>,
    slots: Vec<Slot>,
}

/// A name split at its last dot.
fn split_at_last_dot(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = name.iter().rposition(|b| *b == b'.')?;
    Some((&name[..dot], &name[dot + 1..]))
}

fn is_joined(name: &[u8], prefix: &[u8], suffix: &[u8]) -> bool {
    name.len() == prefix.len() + 1 + suffix.len()
        && name.starts_with(prefix)
        && name[prefix.len()] == b'.'
        && name.ends_with(suffix)
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("len", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Names {
    pub fn get(&self, name: &str) -> Option<NameId> {
        self.find(self.hasher.hash_one(name.as_bytes()), name.as_bytes())
    }

    fn find(&self, hash: u64, name: &[u8]) -> Option<NameId> {
        self.ids
            .find(hash, |id| self.slots[id.0 as usize].bytes() == name)
            .copied()
    }

    pub fn intern(&mut self, name: &str) -> NameId {
        let hash = self.hasher.hash_one(name.as_bytes());
        if let Some(id) = self.find(hash, name.as_bytes()) {
            return id;
        }
        let Self {
            hasher,
            ids,
            dotted,
            slots,
        } = self;
        let id = NameId(u32::try_from(slots.len()).expect("names are capped far below 2^32"));
        slots.push(Slot::new(name));
        ids.insert_unique(hash, id, |id| hasher.hash_one(slots[id.0 as usize].bytes()));
        if let Some(parts) = split_at_last_dot(name.as_bytes()) {
            dotted.insert_unique(hasher.hash_one(parts), id, |id| {
                let parts = split_at_last_dot(slots[id.0 as usize].bytes());
                hasher.hash_one(parts.expect("only dotted names are in this table"))
            });
        }
        id
    }

    pub fn intern_edge(&mut self, source: &str, destination: &str) -> crate::EdgeKey {
        crate::EdgeKey {
            source: self.intern(source),
            destination: self.intern(destination),
        }
    }

    pub fn intern_endpoint(
        &mut self,
        edge: crate::EdgeKey,
        method: &str,
        route: &str,
    ) -> crate::EndpointKey {
        crate::EndpointKey {
            edge,
            method: self.intern(method),
            route: self.intern(route),
        }
    }

    pub fn intern_entry(&mut self, service: &str, route: &str) -> crate::EntryKey {
        crate::EntryKey {
            service: self.intern(service),
            route: self.intern(route),
        }
    }

    /// The name behind an id this interner issued.
    pub fn name(&self, id: NameId) -> &str {
        self.slots[id.0 as usize].as_str()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id of `workload.key()` without allocating it (the hot path asks per call).
    pub fn workload(&self, w: &Workload) -> Option<NameId> {
        match w.namespace.as_deref() {
            Some(ns) if ns.contains('.') => self.get(&w.key()),
            Some(ns) if !ns.is_empty() => {
                let parts = (w.service.as_bytes(), ns.as_bytes());
                self.dotted
                    .find(self.hasher.hash_one(parts), |id| {
                        is_joined(self.slots[id.0 as usize].bytes(), parts.0, parts.1)
                    })
                    .copied()
            }
            _ => self.get(&w.service),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Interning is a bijection between distinct names and ids, across the inline
        /// and shared storage boundary and through table growth.
        #[test]
        fn interning_round_trips(names in proptest::collection::vec(".{0,80}", 1..300)) {
            let mut interner = Names::default();
            let ids: Vec<NameId> = names.iter().map(|n| interner.intern(n)).collect();
            for (name, id) in names.iter().zip(&ids) {
                proptest::prop_assert_eq!(interner.get(name), Some(*id));
                proptest::prop_assert_eq!(interner.name(*id), name.as_str());
            }
            let distinct: std::collections::HashSet<&String> = names.iter().collect();
            proptest::prop_assert_eq!(interner.len(), distinct.len());
            let copy = interner.clone();
            for name in &names {
                proptest::prop_assert_eq!(copy.get(name), interner.get(name));
            }
        }
    }

    proptest::proptest! {
        /// The join-free workload lookup finds exactly what `Workload::key` names, also
        /// when dotted services and namespaces make two workloads share a key or nearly.
        #[test]
        fn workload_lookup_matches_the_key(
            service in "[a-c.]{0,6}|.{0,300}",
            namespace in proptest::option::of("[a-c.]{0,4}|.{0,40}"),
            others in proptest::collection::vec("[a-c.]{0,8}", 0..8),
        ) {
            let w = Workload { service: service.into(), namespace: namespace.map(Into::into), principal: None };
            let mut names = Names::default();
            for other in others.iter().filter(|o| **o != w.key()) {
                names.intern(other);
            }
            proptest::prop_assert_eq!(names.workload(&w), None);
            let id = names.intern(&w.key());
            proptest::prop_assert_eq!(names.workload(&w), Some(id));
        }
    }

    #[test]
    fn names_at_the_inline_limit_and_beyond_are_distinct() {
        let mut names = Names::default();
        let at = "a".repeat(INLINE_NAME_BYTES);
        let over = "a".repeat(INLINE_NAME_BYTES + 1);
        let a = names.intern(&at);
        let b = names.intern(&over);
        assert_ne!(a, b);
        assert_eq!(names.name(a), at);
        assert_eq!(names.name(b), over);
        assert_eq!(names.get(&"a".repeat(INLINE_NAME_BYTES - 1)), None);
        assert_eq!(names.get(""), None);
        let empty = names.intern("");
        assert_eq!(names.name(empty), "");
    }
}
