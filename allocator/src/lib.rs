//! The process's global allocator and how it is tuned: mimalloc, which handles the
//! receivers-allocate, pipeline-frees churn far better than the system allocator, with
//! freed memory kept mapped for [`PURGE_DELAY_MS`] before it goes back to the OS. This
//! crate owns nothing else; it is the one crate with unsafe code (a single FFI call
//! that sets an option, [`tune`]), and the binary declares the allocator and calls
//! [`tune`] first thing in `main`.
#![deny(unsafe_code)]

use std::os::raw::{c_int, c_long};

pub use mimalloc::MiMalloc as Allocator;

/// How long freed memory stays mapped before mimalloc returns it to the OS, in
/// milliseconds. mimalloc's own default (1 s) suits programs that allocate in bursts;
/// a server at a steady load frees and reuses the same memory every few seconds (each
/// request's buffers, the history writer's row groups), and each time the memory was
/// returned in between, reusing it costs a page fault and a zeroed page per 4 KiB. On
/// the 2-core CI machine size that churn was 6–10 % of `serve`'s CPU (cpu bench). Ten
/// seconds keeps the steady-state memory mapped and still returns a load spike's
/// memory soon after it ends.
pub const PURGE_DELAY_MS: c_long = 10_000;

/// mimalloc's environment variable for the same option: an operator who sets it wins.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v2 and v3): `libmimalloc-sys`
/// declares the functions but not this constant. A test reads the option's default
/// through this index to check it.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// What [`tune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// The purge delay is now [`PURGE_DELAY_MS`].
    Applied,
    /// The operator set [`PURGE_DELAY_ENV`]; mimalloc read it at start-up and it stands.
    FromEnvironment,
}

/// Sets the allocator's options. Call once, first thing in `main`.
pub fn tune() -> Tuning {
    if operator_set_purge_delay() {
        return Tuning::FromEnvironment;
    }
    set_purge_delay(PURGE_DELAY_MS);
    Tuning::Applied
}

/// Whether [`PURGE_DELAY_ENV`] holds a value. Empty counts as unset, as for eastwest's
/// own variables (mimalloc would read it as "on", a 1 ms delay).
fn operator_set_purge_delay() -> bool {
    std::env::var_os(PURGE_DELAY_ENV).is_some_and(|v| !v.is_empty())
}

/// The purge delay in effect, in milliseconds (-1: never purged).
pub fn purge_delay_ms() -> c_long {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_get` takes any option index and only reads mimalloc's option
    // table (initialising the entry on first use), which is thread-safe.
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

fn set_purge_delay(ms: c_long) {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table; the purge delay
    // is read afresh at each purge decision, so setting it at any time is sound.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_the_purge_delay_and_tune_sets_it() {
        if operator_set_purge_delay() {
            assert_eq!(tune(), Tuning::FromEnvironment);
            return;
        }
        if std::env::var_os(PURGE_DELAY_ENV).is_none() {
            // mimalloc v3's default purge delay; no neighbouring option defaults to it.
            assert_eq!(purge_delay_ms(), 1_000, "index {MI_OPTION_PURGE_DELAY}");
        }
        assert_eq!(tune(), Tuning::Applied);
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
