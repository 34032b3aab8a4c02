//! Long names that repeat on nearly every span — SPIFFE principals, gRPC routes, service
//! addresses — kept once for the life of the process, so a span's or call's copy of one
//! is a pointer: nothing allocated where a span is read, nothing freed where it is
//! dropped (on another thread), and history copies the bytes out of a few hot lines
//! instead of one scattered allocation per call.
//!
//! Telemetry is hostile, so the table is bounded and hard to fill with junk: a name is
//! kept only when it is seen again soon after (one-off values such as ids or probed paths
//! are not), and at most [`MAX_SHARED_NAMES`] names and [`MAX_SHARED_BYTES`] bytes are
//! ever kept. Past that, names are allocated as before: the table only saves work, it
//! never changes a value.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Mutex;

use eastwest_model::CompactString;
use hashbrown::HashTable;

/// Names kept at most, over all threads.
pub const MAX_SHARED_NAMES: usize = 8_192;
/// Bytes of names kept at most, over all threads.
pub const MAX_SHARED_BYTES: usize = 1 << 20;
/// Longest string a [`CompactString`] keeps inline (no allocation to save below it).
const INLINE_BYTES: usize = std::mem::size_of::<CompactString>();
/// Recently seen names (by hash) that are not kept yet: one slot per hash bucket.
const SEEN_SLOTS: usize = 4_096;

/// Names every thread has kept: the bound, and one copy of each name however many threads
/// read it.
struct Registry {
    names: KeptSet,
    bytes: usize,
}

impl Registry {
    const fn new() -> Self {
        Self {
            names: KeptSet::new(),
            bytes: 0,
        }
    }
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

/// One thread's view of the registry: lookups take no lock.
struct Local {
    registry: &'static Mutex<Registry>,
    names: KeptSet,
    seen: Box<[u64]>,
    /// The registry refused a name: stop asking it.
    full: bool,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::new(&REGISTRY));
}

fn process_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| foldhash::fast::RandomState::default().hash_one(0u8))
}

/// Fixed per process (every thread hashes alike), random per start: which names share a
/// slot is not known to a sender.
fn hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(process_seed())
}

/// A set of kept names: a thread's view of the registry, the registry itself, or the kept
/// names that passed some check on this thread (such as "this path is its own
/// template"), so that the check's result for a repeated name is one lookup. Only kept
/// names go in, so a set is bounded like the registry.
pub struct KeptSet {
    names: HashTable<&'static str>,
}

impl KeptSet {
    pub const fn new() -> Self {
        Self {
            names: HashTable::new(),
        }
    }

    /// `name`, kept, when it was inserted.
    pub fn get(&self, name: &str) -> Option<CompactString> {
        self.find(hasher().hash_one(name), name)
            .map(CompactString::const_new)
    }

    /// Remembers `name` when it is a kept one (else it is not remembered).
    pub fn insert(&mut self, name: &CompactString) {
        if let Some(kept) = name.as_static_str() {
            self.insert_kept(hasher().hash_one(kept), kept);
        }
    }

    /// The kept copy of `name`, whose hash is `hash`.
    fn find(&self, hash: u64, name: &str) -> Option<&'static str> {
        self.names.find(hash, |kept| *kept == name).copied()
    }

    /// Adds `kept` (whose hash is `hash`) unless it is in already.
    fn insert_kept(&mut self, hash: u64, kept: &'static str) {
        if self.find(hash, kept).is_none() {
            let hasher = hasher();
            self.names.insert_unique(hash, kept, |k| hasher.hash_one(k));
        }
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// `name` as a [`CompactString`]: inline when short, the kept copy when it is a repeated
/// long name, else allocated.
pub fn shared(name: &str) -> CompactString {
    if name.len() <= INLINE_BYTES {
        return CompactString::new(name);
    }
    LOCAL.with_borrow_mut(|local| local.get(name))
}

impl Local {
    fn new(registry: &'static Mutex<Registry>) -> Self {
        Self {
            registry,
            names: KeptSet::new(),
            seen: vec![0; SEEN_SLOTS].into_boxed_slice(),
            full: false,
        }
    }

    fn get(&mut self, name: &str) -> CompactString {
        let hash = hasher().hash_one(name);
        if let Some(kept) = self.names.find(hash, name) {
            return CompactString::const_new(kept);
        }
        let slot = &mut self.seen[hash as usize % SEEN_SLOTS];
        if self.full || *slot != hash {
            *slot = hash;
            return CompactString::new(name);
        }
        match keep(self.registry, name, hash) {
            Some(kept) => {
                self.names.insert_kept(hash, kept);
                CompactString::const_new(kept)
            }
            None => {
                self.full = true;
                CompactString::new(name)
            }
        }
    }
}

/// The registry's copy of `name` (whose hash is `hash`), made now if it has none and the
/// bounds allow.
fn keep(registry: &Mutex<Registry>, name: &str, hash: u64) -> Option<&'static str> {
    // Nothing can be left half-done under this lock: a poisoned one is still sound.
    let mut registry = registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(kept) = registry.names.find(hash, name) {
        return Some(kept);
    }
    if registry.names.len() >= MAX_SHARED_NAMES || registry.bytes + name.len() > MAX_SHARED_BYTES {
        return None;
    }
    let kept: &'static str = Box::leak(name.into());
    registry.bytes += name.len();
    registry.names.insert_kept(hash, kept);
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "spiffe://cluster.local/ns/boutique/sa/frontend";

    #[test]
    fn a_repeated_long_name_is_kept_and_equal() {
        let first = shared(LONG);
        let second = shared(LONG);
        let third = shared(LONG);
        assert_eq!(
            (first.as_str(), second.as_str(), third.as_str()),
            (LONG, LONG, LONG)
        );
        assert!(first.is_heap_allocated(), "a name seen once is not kept");
        assert!(second.as_static_str().is_some(), "seen again: kept");
        assert_eq!(
            third.as_static_str().map(str::as_ptr),
            second.as_static_str().map(str::as_ptr)
        );
    }

    #[test]
    fn a_kept_set_remembers_only_kept_names() {
        let mut set = KeptSet::new();
        let long = "/hipstershop.CurrencyService/GetSupportedCurrencies";
        let first = shared(long);
        set.insert(&first);
        assert_eq!(set.get(long), None, "not kept yet: not remembered");
        let kept = shared(long);
        set.insert(&kept);
        assert_eq!(set.get(long).as_deref(), Some(long));
        assert_eq!(set.get("/hipstershop.CurrencyService/Convert"), None);
    }

    #[test]
    fn short_names_stay_inline_and_one_off_names_are_not_kept() {
        assert!(!shared("frontend").is_heap_allocated());
        assert!(shared("frontend").as_static_str().is_none());
        for i in 0..100 {
            let id = format!("request-id-{i:032x}");
            let s = shared(&id);
            assert_eq!(s, id);
            assert!(
                s.as_static_str().is_none(),
                "a name seen once is never kept"
            );
        }
    }

    #[test]
    fn the_registry_stays_within_its_bounds_across_threads() {
        // A registry of its own: the process's is shared with the other tests.
        let registry: &'static Mutex<Registry> = Box::leak(Box::new(Mutex::new(Registry::new())));
        // Every name twice, far more names than the bound, from two threads.
        let threads: Vec<_> = (0..2)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut local = Local::new(registry);
                    let mut kept = 0;
                    for i in 0..MAX_SHARED_NAMES {
                        let name = format!("thread-{t}-bound-test-name-{i:08}");
                        assert_eq!(local.get(&name), name);
                        let again = local.get(&name);
                        assert_eq!(again, name);
                        kept += usize::from(again.as_static_str().is_some());
                    }
                    // Past the bound a name is still read right, just not kept.
                    let late = "a-name-after-the-registry-is-full-0123456789";
                    assert_eq!(
                        (local.get(late), local.get(late)),
                        (late.into(), late.into())
                    );
                    kept
                })
            })
            .collect();
        let kept: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        let registry = registry.lock().expect("registry");
        // Twice the bound was offered: the registry filled up, and no further.
        assert_eq!(registry.names.len(), MAX_SHARED_NAMES);
        assert!(kept <= MAX_SHARED_NAMES, "{kept}");
        assert!(registry.bytes <= MAX_SHARED_BYTES);
    }
}
