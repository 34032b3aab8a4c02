//! `cargo fuzz run otlp_traces`: see `eastwest_collector::fuzzing::otlp_traces` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    eastwest_collector::fuzzing::otlp_traces(data);
});
