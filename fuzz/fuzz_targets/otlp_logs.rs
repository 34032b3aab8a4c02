//! `cargo fuzz run otlp_logs`: see `eastwest_collector::fuzzing::otlp_logs` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    eastwest_collector::fuzzing::otlp_logs(data);
});
