//! `cargo fuzz run access_log_text`: see `eastwest_collector::fuzzing::access_log_text` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    eastwest_collector::fuzzing::access_log_text(data);
});
