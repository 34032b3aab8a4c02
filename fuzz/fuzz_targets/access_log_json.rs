//! `cargo fuzz run access_log_json`: see `eastwest_collector::fuzzing::access_log_json` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    eastwest_collector::fuzzing::access_log_json(data);
});
