//! `cargo fuzz run otlp_admission`: see `eastwest_collector::fuzzing::otlp_admission` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    eastwest_collector::fuzzing::otlp_admission(data);
});
