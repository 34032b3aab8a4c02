//! Benches of the release `eastwest` binary driven from outside, as a client would: CPU per
//! span of the real path (`benches/cpu.rs`) and span-to-alert latency under load
//! (`benches/latency.rs`). This crate owns no product code; the benches print tables for
//! the README.
#![forbid(unsafe_code)]
