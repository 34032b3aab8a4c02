//! `cargo fuzz run otlp_wire`: see `eastwest_collector::fuzzing::otlp_wire` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    eastwest_collector::fuzzing::otlp_wire(data);
});
